"""One exam's results as DICOM Part 10 files: each object type in a series of its own, in the
study of the source images. File names carry the object type and its new SOP Instance UID only."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import highdicom as hd

from gmic_core.calibration import SiteCalibration
from gmic_core.errors import ExportError
from gmic_core.imaging import Mammogram, View
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER
from gmic_core.inference import ExamResult
from gmic_core.reporting.cad_sr import cad_sr
from gmic_core.reporting.findings import DEFAULT_THRESHOLD, view_findings
from gmic_core.reporting.identity import Algorithm
from gmic_core.reporting.measurement_report import measurement_report
from gmic_core.reporting.secondary_capture import secondary_capture
from gmic_core.reporting.segmentation import segmentation
from gmic_core.reporting.sources import read_sources

log = logging.getLogger(__name__)

# Series numbers of the exported series, clear of a modality's usual 1-999.
SERIES_NUMBER = {"cad-sr": 9001, "measurement-report": 9002, "seg": 9003, "sc": 9004}


def export_exam(
    result: ExamResult,
    mammograms: Mapping[View, Mammogram],
    algorithm: Algorithm,
    out_dir: Path,
    threshold: float = DEFAULT_THRESHOLD,
    calibration: SiteCalibration | None = None,
) -> list[Path]:
    """Write the CAD SR, the TID 1500 report, one Segmentation per analysed view and the Secondary
    Capture of the hanging protocol into ``out_dir``;
    ``mammograms``: the decoded images the result was computed from (their files are the sources);
    ``threshold``: the saliency level of the reported regions (the caller's stored operating point);
    ``calibration``: the site's calibration of the model, whose probabilities and decile score both
    reports then carry beside the raw ones.
    A view without a result gets no object. Raises ExportError for an exam without DICOM files and
    for a folder that cannot be written."""
    views = [view for view in PUBLISHED_VIEW_ORDER if view in result.views]
    sources = read_sources({view: mammograms[view] for view in views})
    findings = {view: view_findings(result.views[view], sources[view].frame, threshold) for view in views}
    series = {kind: hd.UID() for kind in SERIES_NUMBER}
    objects = [
        (
            "cad-sr",
            cad_sr(
                result,
                findings,
                sources,
                algorithm,
                series["cad-sr"],
                SERIES_NUMBER["cad-sr"],
                calibration,
            ),
        ),
        (
            "measurement-report",
            measurement_report(
                result,
                findings,
                sources,
                algorithm,
                series["measurement-report"],
                SERIES_NUMBER["measurement-report"],
                calibration,
            ),
        ),
        *(
            (
                f"seg-{view.value}",
                segmentation(
                    findings[view], sources[view], algorithm, series["seg"], SERIES_NUMBER["seg"], number
                ),
            )
            for number, view in enumerate(views, start=1)
        ),
        (
            "sc",
            secondary_capture(result, mammograms, sources, algorithm, series["sc"], SERIES_NUMBER["sc"]),
        ),
    ]
    paths = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for kind, dataset in objects:
            path = out_dir / f"{kind}_{dataset.SOPInstanceUID}.dcm"
            dataset.save_as(path, enforce_file_format=True)
            paths.append(path)
    except OSError as error:
        raise ExportError(
            f"{out_dir}: the DICOM objects could not be written ({error.strerror}); choose a folder "
            "that can be created and written to, with free space"
        ) from error
    log.info("wrote %d DICOM objects to %s", len(paths), out_dir)
    return paths
