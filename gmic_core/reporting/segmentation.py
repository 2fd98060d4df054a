"""Segmentation per view: the benign and malignant saliency maps as a FRACTIONAL (probability)
Segmentation on the source image's pixel grid, in its file frame."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.uid import RLELossless

from gmic_core.reporting.codes import ALGORITHM_FAMILY, SEGMENT_CATEGORY, SEGMENT_TYPE
from gmic_core.reporting.findings import SaliencyKind, ViewFindings
from gmic_core.reporting.identity import MANUFACTURER, Algorithm
from gmic_core.reporting.sources import SourceImage

# Saliency maps upsampled by nearest neighbour are mostly long runs of equal values: RLE keeps them
# small and is the fastest of the lossless syntaxes highdicom encodes fractional segmentations in.
TRANSFER_SYNTAX = RLELossless
SEGMENT_NUMBER = {SaliencyKind.BENIGN: 1, SaliencyKind.MALIGNANT: 2}


def segmentation(
    findings: ViewFindings,
    source: SourceImage,
    algorithm: Algorithm,
    series_uid: str,
    series_number: int,
    instance_number: int,
) -> hd.seg.Segmentation:
    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm.name, family=ALGORITHM_FAMILY, version=algorithm.version, source=MANUFACTURER
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=SEGMENT_NUMBER[kind],
            segment_label=f"{kind.value} saliency",
            segmented_property_category=SEGMENT_CATEGORY,
            segmented_property_type=SEGMENT_TYPE[kind],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
        )
        for kind in SaliencyKind
    ]
    seg = hd.seg.Segmentation(
        source_images=[source.header],
        pixel_array=np.moveaxis(findings.saliency, 0, -1)[None],  # [1 frame, rows, columns, segments]
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
        segment_descriptions=descriptions,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=instance_number,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=algorithm.name,
        software_versions=algorithm.software_versions,
        device_serial_number=algorithm.members[0].sha256[:16],
        fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        content_description=algorithm.marked("GMIC saliency")[:64],  # LO
        content_label="GMIC_SALIENCY",
        transfer_syntax_uid=TRANSFER_SYNTAX,
        omit_empty_frames=False,
    )
    # General Image module, Type 2C without a plane orientation (highdicom leaves it out): the segments
    # lie on the source's pixel grid, so the source's orientation is theirs.
    seg.PatientOrientation = source.header.get("PatientOrientation", "")
    return seg
