"""The TID 1500 Measurement Report (Comprehensive SR): the saliency regions and ROI patches as planar
ROIs on their source images, the probabilities as measurements, so that viewers such as OHIF show
them."""

from __future__ import annotations

import functools
from collections.abc import Mapping

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from gmic_core.calibration import SiteCalibration
from gmic_core.imaging import View
from gmic_core.inference import ExamResult
from gmic_core.reporting.codes import (
    ATTENTION,
    BENIGN_PROBABILITY,
    BREAST,
    CALIBRATED_PROBABILITY,
    CERTAINTY_OF_FINDING,
    DECILE_SCORE,
    DECILE_UNIT,
    LATERALITY,
    MAMMOGRAPHY,
    NO_UNITS,
    PERCENT,
    PROBABILITY_OF_CANCER,
    ROI_PATCH,
    SELECTED_REGION,
)
from gmic_core.reporting.findings import ViewFindings
from gmic_core.reporting.geometry import box_outline, graphic_data
from gmic_core.reporting.identity import MANUFACTURER, Algorithm
from gmic_core.reporting.sources import SourceImage

TITLE = codes.DCM.ImagingMeasurementReport  # CID 7021


def device_context(algorithm: Algorithm) -> hd.sr.ObservationContext:
    """The algorithm as the observing device (TID 1004); its UID is derived from the checkpoints, so
    that every report of the same model names the same device."""
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,  # CID 270
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(entropy_srcs=[m.sha256 for m in algorithm.members]),
                name=algorithm.name,
                manufacturer_name=MANUFACTURER,
                model_name=algorithm.version,
            ),
        )
    )


def algorithm_id(algorithm: Algorithm, threshold: float | None = None) -> hd.sr.AlgorithmIdentification:
    """TID 4019: the name, the versions and the checkpoints of every member as parameters."""
    parameters = [member.label for member in algorithm.members]
    if threshold is not None:
        parameters.append(f"saliency threshold {threshold:g}")
    return hd.sr.AlgorithmIdentification(
        name=algorithm.name, version=algorithm.version, parameters=parameters
    )


def measurement_report(
    result: ExamResult,
    findings: Mapping[View, ViewFindings],
    sources: Mapping[View, SourceImage],
    algorithm: Algorithm,
    series_uid: str,
    series_number: int,
    calibration: SiteCalibration | None = None,
) -> hd.sr.ComprehensiveSR:
    """The TID 1500 report; with a site ``calibration``, each breast's and the exam's calibrated
    probability and the exam's decile score as measurements beside the raw ones."""
    groups: list = []
    for view, view_findings in findings.items():
        source = hd.sr.SourceImageForRegion.from_source_image(sources[view].header)
        identification = algorithm_id(algorithm, view_findings.threshold)
        site = [hd.sr.FindingSite(BREAST, laterality=LATERALITY[view.laterality.value])]
        planar = functools.partial(_planar_roi, source, identification, site)
        for index, region in enumerate(view_findings.regions, start=1):
            groups.append(
                planar(
                    f"{view.value} {region.kind.value} region {index}",
                    region.outline,
                    SELECTED_REGION,
                    hd.sr.Measurement(CERTAINTY_OF_FINDING, round(100 * region.peak, 4), PERCENT),
                )
            )
        for index, roi in enumerate(view_findings.rois, start=1):
            groups.append(
                planar(
                    f"{view.value} ROI patch {index}",
                    box_outline(roi.box),
                    ROI_PATCH,
                    hd.sr.Measurement(ATTENTION, roi.attention, NO_UNITS),
                )
            )
        view_result = result.views[view]
        groups.append(
            _probabilities(f"{view.value}", view_result.malignant, view_result.benign, site, algorithm, [])
        )
    for side, breast in result.breasts.items():
        site = [hd.sr.FindingSite(BREAST, laterality=LATERALITY[side.value])]
        calibrated = (
            [] if calibration is None else _calibrated(calibration.breast_probability(breast.malignant))
        )
        groups.append(
            _probabilities(
                f"breast {side.value}", breast.malignant, breast.benign, site, algorithm, calibrated
            )
        )
    calibrated = []
    if calibration is not None:
        score = result.malignancy_score
        calibrated = [
            *_calibrated(calibration.exam_probability(score)),
            hd.sr.Measurement(DECILE_SCORE, calibration.decile(score), DECILE_UNIT),
        ]
    groups.append(_probabilities("exam", result.malignancy_score, None, None, algorithm, calibrated))
    report = hd.sr.MeasurementReport(
        observation_context=device_context(algorithm),
        procedure_reported=MAMMOGRAPHY,
        imaging_measurements=groups,
        title=TITLE,
    )
    return hd.sr.ComprehensiveSR(
        evidence=[source.header for source in sources.values()],
        content=report[0],
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=algorithm.marked("GMIC measurements"),
        software_versions=algorithm.software_versions,
    )


def _planar_roi(
    source: hd.sr.SourceImageForRegion,
    identification: hd.sr.AlgorithmIdentification,
    site: list[hd.sr.FindingSite],
    label: str,
    outline: np.ndarray,
    finding_type: Code,
    measurement: hd.sr.Measurement,
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """One finding as a TID 1410 planar ROI: its closed outline on the source image and one measurement."""
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=label),
        referenced_region=hd.sr.ImageRegion(hd.sr.GraphicTypeValues.POLYLINE, graphic_data(outline), source),
        finding_type=finding_type,
        algorithm_id=identification,
        finding_sites=site,
        measurements=[measurement],
    )


def _calibrated(probability: float) -> list[hd.sr.Measurement]:
    return [hd.sr.Measurement(CALIBRATED_PROBABILITY, probability, NO_UNITS)]


def _probabilities(
    label: str,
    malignant: float,
    benign: float | None,
    sites: list[hd.sr.FindingSite] | None,
    algorithm: Algorithm,
    calibrated: list[hd.sr.Measurement],
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements = [hd.sr.Measurement(PROBABILITY_OF_CANCER, malignant, NO_UNITS)]
    if benign is not None:
        measurements.append(hd.sr.Measurement(BENIGN_PROBABILITY, benign, NO_UNITS))
    measurements += calibrated
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"{label} probabilities"),
        algorithm_id=algorithm_id(algorithm),
        finding_sites=sites,
        measurements=measurements,
    )
