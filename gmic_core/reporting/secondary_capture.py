"""The Secondary Capture per exam (SOP Class 1.2.840.10008.5.1.4.1.1.7): the hanging protocol with
the findings burned in (:mod:`gmic_core.reporting.picture`), for a PACS that shows nothing else.
8-bit RGB because the overlays are coloured; RLE lossless so that the burned-in text stays sharp
and the black background costs little."""

from __future__ import annotations

from collections.abc import Mapping

import highdicom as hd
from pydicom.uid import RLELossless

from gmic_core.imaging import Mammogram, View
from gmic_core.inference import ExamResult
from gmic_core.reporting.identity import MANUFACTURER, Algorithm
from gmic_core.reporting.picture import render_exam
from gmic_core.reporting.sources import SourceImage

TRANSFER_SYNTAX = RLELossless


def secondary_capture(
    result: ExamResult,
    mammograms: Mapping[View, Mammogram],
    sources: Mapping[View, SourceImage],
    algorithm: Algorithm,
    series_uid: str,
    series_number: int,
) -> hd.sc.SCImage:
    """Patient and study copied from the first source; ``mammograms`` as for
    :func:`~gmic_core.reporting.picture.render_exam`."""
    reference = next(iter(sources.values())).header
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=reference,
        pixel_array=render_exam(result, mammograms, algorithm),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        # highdicom asks for one; replaced below.
        patient_orientation=("L", "F"),
        transfer_syntax_uid=TRANSFER_SYNTAX,
        series_description=algorithm.marked("GMIC CAD picture"),
        software_versions=algorithm.software_versions,
        manufacturer_model_name=algorithm.name,
    )
    # Patient Orientation and Laterality (Type 2C, the breast being a paired structure): four views
    # of both breasts side by side have neither one orientation nor one side, so both are empty
    # (unknown). The burned-in text names the model and probabilities, never the patient.
    sc.PatientOrientation = None
    sc.Laterality = None
    sc.BurnedInAnnotation = "NO"
    return sc
