"""The Mammography CAD SR (SOP Class 1.2.840.10008.5.1.4.1.1.88.50), content tree TID 4000.

highdicom has no TID 4000 class: the tree is composed of its content items, each commented with
the template it fills (PS3.16: TID 4000 Document Root, 4001 Overall Impression/Recommendation, 4003
Individual Impression/Recommendation, 4006 Single Image Finding, 4015 Detections Performed, 4016
Analyses Performed, 4017 Detection Performed, 4019 Algorithm Identification, 4020 Image Library
Entry) and, where it was checked against the standard's tables, the row (TID 4000 rows 1-4, TID 4001
rows 1 and 3, TID 4015 rows 1-2); other row numbers are this module's reading. Known departures,
for a later pass: the detections performed (TID 4017) and the findings' coordinates reference their
images directly, not by reference to the Image Library's entries. dciodvfy checks the IOD and dsrdump
the SR relationship constraints; neither checks template rules. The document is highdicom's
Comprehensive SR, whose modules the Mammography CAD SR IOD shares, stored under the Mammography CAD SR
class."""

from __future__ import annotations

from collections.abc import Mapping

import highdicom as hd
from highdicom.sr.templates import DEFAULT_LANGUAGE
from pydicom.sr.codedict import codes
from pydicom.uid import MammographyCADSRStorage

from gmic_core.calibration import SiteCalibration
from gmic_core.imaging import View
from gmic_core.inference import ExamResult
from gmic_core.reporting.codes import (
    CALIBRATED_PROBABILITY,
    CERTAINTY_OF_FINDING,
    DECILE_SCORE,
    DECILE_UNIT,
    INDIVIDUAL_IMPRESSION,
    LATERALITY,
    PERCENT,
    PROBABILITY_OF_CANCER,
    SELECTED_REGION,
)
from gmic_core.reporting.findings import ViewFindings
from gmic_core.reporting.geometry import box_outline, graphic_data
from gmic_core.reporting.identity import MANUFACTURER, Algorithm
from gmic_core.reporting.measurement_report import device_context
from gmic_core.reporting.sources import SourceImage

R = hd.sr.RelationshipTypeValues
# Rendering intent (CID 6034): regions above the threshold are for the reader; ROI patches are what
# the local network looked at, shown on request.
REGION_INTENT = codes.DCM.PresentationRequiredRenderingDeviceIsExpectedToPresent
ROI_INTENT = codes.DCM.PresentationOptionalRenderingDeviceMayPresent


def cad_sr(
    result: ExamResult,
    findings: Mapping[View, ViewFindings],
    sources: Mapping[View, SourceImage],
    algorithm: Algorithm,
    series_uid: str,
    series_number: int,
    calibration: SiteCalibration | None = None,
) -> hd.sr.ComprehensiveSR:
    """A Comprehensive SR document object whose SOP class is Mammography CAD SR; with a site
    ``calibration``, the calibrated probabilities and the exam's decile score beside the raw ones."""
    # TID 4000 row 1: the root container.
    root = hd.sr.ContainerContentItem(codes.DCM.MammographyCADReport, template_id="4000")
    content = [
        # TID 4000 row 2 (TID 1204): language.
        hd.sr.LanguageOfContentItemAndDescendants(DEFAULT_LANGUAGE)[0],
        # TID 1001, 1004 observation context: the algorithm as the observing device.
        *device_context(algorithm),
        _overall_impression(result, findings, sources, algorithm, calibration),
        _image_library(sources),
        *_summary(
            codes.DCM.SummaryOfDetections,
            codes.DCM.Succeeded,
            codes.DCM.SuccessfulDetections,
            algorithm,
            sources,
        ),
        # TID 4000 Summary of Analyses: no analysis (CID 6043) is performed.
        hd.sr.CodeContentItem(codes.DCM.SummaryOfAnalyses, codes.DCM.NotAttempted, R.CONTAINS),
    ]
    root.ContentSequence = hd.sr.ContentSequence(content)
    document = hd.sr.ComprehensiveSR(
        evidence=[source.header for source in sources.values()],
        content=root,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=algorithm.marked("GMIC CAD"),
        software_versions=algorithm.software_versions,
    )
    document.SOPClassUID = document.file_meta.MediaStorageSOPClassUID = MammographyCADSRStorage
    return document


def _overall_impression(
    result: ExamResult,
    findings: Mapping[View, ViewFindings],
    sources: Mapping[View, SourceImage],
    algorithm: Algorithm,
    calibration: SiteCalibration | None,
) -> hd.sr.CodeContentItem:
    """TID 4000 -> TID 4001: the summary, the exam's probability and one individual impression
    per breast holding the single image findings of its views."""
    with_findings = any(view.regions or view.rois for view in findings.values())
    # TID 4001 row 1: CAD Processing and Findings Summary (CID 6047).
    summary = hd.sr.CodeContentItem(
        codes.DCM.CADProcessingAndFindingsSummary,
        codes.DCM.AllAlgorithmsSucceededWithFindings
        if with_findings
        else codes.DCM.AllAlgorithmsSucceededWithoutFindings,
        R.CONTAINS,
    )
    items = [_probability(result.malignancy_score, R.HAS_PROPERTIES)]
    if calibration is not None:
        # Beside TID 4001's probability, in the private scheme (PS3.16 has no calibrated concept).
        items += [
            _calibrated(calibration.exam_probability(result.malignancy_score), R.HAS_PROPERTIES),
            hd.sr.NumContentItem(
                DECILE_SCORE,
                calibration.decile(result.malignancy_score),
                DECILE_UNIT,
                relationship_type=R.HAS_PROPERTIES,
            ),
        ]
    for side, breast in result.breasts.items():
        # TID 4001 row 3 (INFERRED FROM) -> TID 4003 row 1: Individual Impression/Recommendation, one
        # per breast.
        impression = hd.sr.ContainerContentItem(INDIVIDUAL_IMPRESSION, relationship_type=R.INFERRED_FROM)
        impression.ContentSequence = hd.sr.ContentSequence(
            [
                hd.sr.CodeContentItem(codes.DCM.ImageLaterality, LATERALITY[side.value], R.HAS_CONCEPT_MOD),
                _probability(breast.malignant, R.CONTAINS),
                *(
                    [_calibrated(calibration.breast_probability(breast.malignant), R.CONTAINS)]
                    if calibration is not None
                    else []
                ),
                *(
                    finding
                    for view in breast.views
                    if view in findings
                    for finding in _single_image_findings(findings[view], sources[view], algorithm)
                ),
            ]
        )
        items.append(impression)
    summary.ContentSequence = hd.sr.ContentSequence(items)
    return summary


def _probability(malignant: float, relationship: hd.sr.RelationshipTypeValues) -> hd.sr.NumContentItem:
    """The malignancy probability (CID 6048), in percent."""
    return hd.sr.NumContentItem(
        PROBABILITY_OF_CANCER, 100 * malignant, PERCENT, relationship_type=relationship
    )


def _calibrated(probability: float, relationship: hd.sr.RelationshipTypeValues) -> hd.sr.NumContentItem:
    """The site-calibrated malignancy probability, in percent."""
    return hd.sr.NumContentItem(
        CALIBRATED_PROBABILITY, 100 * probability, PERCENT, relationship_type=relationship
    )


def _single_image_findings(
    findings: ViewFindings, source: SourceImage, algorithm: Algorithm
) -> list[hd.sr.CodeContentItem]:
    """TID 4003 -> TID 4006, one per saliency region and one per ROI patch, CONTAINS as the Mammography
    CAD SR IOD's relationship constraints allow from the impression's container (dsrdump checks them)."""
    items = []
    for region in findings.regions:
        parameters = f"{region.kind.value} saliency above {findings.threshold:g}"
        centre = [[region.centre[0], region.centre[1]]]
        items.append(
            _finding(REGION_INTENT, parameters, region.peak, centre, region.outline, source, algorithm)
        )
    for roi in findings.rois:
        top, left, bottom, right = roi.box
        centre = [[(top + bottom) / 2, (left + right) / 2]]
        parameters = f"ROI patch of ensemble member {roi.member + 1}, certainty is its attention"
        items.append(
            _finding(ROI_INTENT, parameters, roi.attention, centre, box_outline(roi.box), source, algorithm)
        )
    return items


def _finding(
    intent, parameters: str, certainty: float, centre, outline, source: SourceImage, algorithm: Algorithm
) -> hd.sr.CodeContentItem:
    # TID 4006 row 1: Single Image Finding (CID 6014: Selected Region).
    finding = hd.sr.CodeContentItem(codes.DCM.SingleImageFinding, SELECTED_REGION, R.CONTAINS)
    finding.ContentSequence = hd.sr.ContentSequence(
        [
            # TID 4006 row 2: Rendering Intent (CID 6034).
            hd.sr.CodeContentItem(codes.DCM.RenderingIntent, intent, R.HAS_CONCEPT_MOD),
            # TID 4006 row 3 -> TID 4019: the algorithm that found it.
            *_algorithm_identification(algorithm, parameters),
            # TID 4006 row "Certainty of Finding" (CID 6048), in percent.
            hd.sr.NumContentItem(
                CERTAINTY_OF_FINDING, 100 * certainty, PERCENT, relationship_type=R.HAS_PROPERTIES
            ),
            # TID 4006 rows "Center" (POINT) and "Outline" (POLYLINE), each on its source image.
            _scoord(codes.DCM.Center, hd.sr.GraphicTypeValues.POINT, centre, source),
            _scoord(codes.DCM.Outline, hd.sr.GraphicTypeValues.POLYLINE, outline, source),
        ]
    )
    return finding


def _algorithm_identification(
    algorithm: Algorithm, parameters: str | None = None
) -> list[hd.sr.TextContentItem]:
    """TID 4019 rows 1-3: Algorithm Name, Algorithm Version, Algorithm Parameters (each member's
    name, version and checkpoint hash, and what the finding is)."""
    texts = [member.label for member in algorithm.members] + ([parameters] if parameters else [])
    return [
        hd.sr.TextContentItem(codes.DCM.AlgorithmName, algorithm.name, R.HAS_PROPERTIES),
        hd.sr.TextContentItem(codes.DCM.AlgorithmVersion, algorithm.version, R.HAS_PROPERTIES),
        *(hd.sr.TextContentItem(codes.DCM.AlgorithmParameters, text, R.HAS_PROPERTIES) for text in texts),
    ]


def _scoord(name, graphic_type, points, source: SourceImage) -> hd.sr.ScoordContentItem:
    item = hd.sr.ScoordContentItem(
        name, graphic_type, graphic_data(points), relationship_type=R.HAS_PROPERTIES
    )
    image = hd.sr.ImageContentItem(
        codes.SCT.Source,
        source.header.SOPClassUID,
        source.header.SOPInstanceUID,
        relationship_type=R.SELECTED_FROM,
    )
    item.ContentSequence = hd.sr.ContentSequence([image])
    return item


def _image_library(sources: Mapping[View, SourceImage]) -> hd.sr.ContainerContentItem:
    """TID 4000 rows 3-4 -> TID 4020 (highdicom's TID 1600): every source image with its laterality and
    view."""
    return hd.sr.ImageLibrary([source.header for source in sources.values()])[0]


def _summary(name, status, container_name, algorithm: Algorithm, sources) -> list[hd.sr.ContentItem]:
    """TID 4000 -> TID 4015 rows 1-2, 4017: Summary of Detections (CID 6042) and the detection
    performed, with its algorithm, on every source image."""
    summary = hd.sr.CodeContentItem(name, status, R.CONTAINS)
    performed = hd.sr.ContainerContentItem(container_name, relationship_type=R.INFERRED_FROM)
    detection = hd.sr.CodeContentItem(codes.DCM.DetectionPerformed, SELECTED_REGION, R.CONTAINS)
    detection.ContentSequence = hd.sr.ContentSequence(
        [
            *_algorithm_identification(algorithm),
            *(
                hd.sr.ImageContentItem(
                    codes.SCT.Source,
                    source.header.SOPClassUID,
                    source.header.SOPInstanceUID,
                    relationship_type=R.HAS_PROPERTIES,
                )
                for source in sources.values()
            ),
        ]
    )
    performed.ContentSequence = hd.sr.ContentSequence([detection])
    summary.ContentSequence = hd.sr.ContentSequence([performed])
    return [summary]
