"""``gmic predict``: GMIC on exams from disk, written as JSON or as the published runner's CSV.

Where the database holds a site calibration of the model (``gmic calibrate``), the output adds the
calibrated malignancy probabilities (exam and breasts) and the exam's 1-10 decile score beside the raw
scores, which stay as they are; JSON says ``"calibrated": false`` where there is none."""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.triage.operating_points import SiteSettings, site_settings
from gmic_core.calibration import SiteCalibration
from gmic_core.errors import ExamError, GMICError
from gmic_core.imaging import Exam, find_exams
from gmic_core.imaging.layouts import read_layout
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality
from gmic_core.inference import ExamResult, Predictor, ViewImage, load_standard_views
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.identity import Algorithm
from gmic_core.visualize import save_view

log = logging.getLogger(__name__)

CSV_COLUMNS = ("image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label")
CALIBRATED_CSV_COLUMNS = ("malignant_calibrated", "exam_decile")


@dataclass
class PredictionRun:
    results: list[tuple[ExamResult, Exam]] = field(default_factory=list)
    errors: list[dict[str, str | None]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """How many inputs gave no result: paths, files and exams (an image kept but not scored beside
        a scored exam is not one of them)."""
        scored = {result.exam_id for result, _ in self.results}
        return sum(error["exam_id"] not in scored for error in self.errors)


def predict_paths(
    predictor: Predictor,
    paths: Sequence[Path],
    visualize: Path | None = None,
    layout: str | None = None,
    dicom_out: Path | None = None,
    settings: SiteSettings | None = None,
) -> PredictionRun:
    """Run every exam :func:`~gmic_core.imaging.find_exams` finds at ``paths`` (folders, DICOM files,
    exam.json manifests) or, with ``layout``, every exam of that public dataset's trees
    (:func:`gmic_core.imaging.layouts.read_layout`). A path, file or exam that cannot be used, and an
    image kept but not scored (a spot compression view, ...), is recorded in ``errors``; the others go
    on. ``dicom_out``: write each exam's results there as DICOM objects, with the site's ``settings``."""
    settings = settings or SiteSettings()
    run = PredictionRun()
    exams = _found_exams(paths, run) if layout is None else _layout_exams(layout, paths, run)
    pictures: set[str] = set()
    for exam in exams:
        try:
            if not exam.images:
                raise ExamError(f"exam {exam.exam_id}: none of the standard views R-CC, L-CC, R-MLO, L-MLO")
            mammograms = load_standard_views(exam, predictor.decoding)
            images = {view: ViewImage.of(m, exam.horizontal_flip) for view, m in mammograms.items()}
            result = predictor.predict(exam.exam_id, images)
            if (dicom_out or visualize) and any(m.grid for m in mammograms.values()):
                mammograms = load_standard_views(exam)  # exports and pictures show the full-size image
        except GMICError as error:
            log.warning("exam from %s could not be processed: %s", exam.source, error)
            run.errors.append({"path": str(exam.source), "exam_id": exam.exam_id, "error": str(error)})
            continue
        run.results.append((result, exam))
        if dicom_out is not None:
            try:
                export_exam(
                    result,
                    mammograms,
                    Algorithm.of(predictor.checkpoints),
                    dicom_out,
                    settings.report_threshold,
                    settings.calibration,
                )
            except GMICError as error:
                run.errors.append({"path": str(exam.source), "exam_id": exam.exam_id, "error": str(error)})
        if visualize is not None:
            stem = picture_stem(exam.exam_id, pictures)
            for view, view_result in result.views.items():
                save_view(mammograms[view].display(), view_result, visualize / f"{stem}_{view.value}.png")
    return run


def picture_stem(exam_id: str, taken: set[str]) -> str:
    """A file name stem for the exam's pictures that stays inside the output folder (only letters,
    digits, ``.``, ``-`` and ``_``; no leading dot) and that no earlier exam of the run has: exams
    that share an id (one Study Instance UID found twice, a manifest id) get ``-2``, ``-3``, ...
    ``taken`` is the run's stems so far; the new one is added to it."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", exam_id).lstrip(".") or "exam"
    stem, number = base, 1
    while stem in taken:
        number += 1
        stem = f"{base}-{number}"
    taken.add(stem)
    return stem


def _found_exams(paths: Sequence[Path], run: PredictionRun) -> list[Exam]:
    found = find_exams(paths)
    exam_of = {ref.source: exam.exam_id for exam in found.exams for ref in exam.extra_images}
    for file, message in found.failures:
        run.errors.append({"path": str(file), "exam_id": None, "error": message})
    for file, message in found.not_scored:
        run.errors.append({"path": str(file), "exam_id": exam_of[file], "error": message})
    return found.exams


def _layout_exams(layout: str, paths: Sequence[Path], run: PredictionRun) -> list[Exam]:
    exams = []
    for path in paths:
        try:
            dataset = read_layout(layout, path)
        except GMICError as error:
            run.errors.append({"path": str(path), "exam_id": None, "error": str(error)})
            continue
        for file, message in dataset.left_out:
            run.errors.append({"path": str(file), "exam_id": None, "error": message})
        if not dataset.exams:
            run.errors.append(
                {"path": str(path), "exam_id": None, "error": f"{path}: no exam found in the {layout} layout"}
            )
        exams.extend(layout_exam.exam for layout_exam in dataset.exams)
    return exams


def stored_site_settings(url: str | None, model_key: str) -> SiteSettings:
    """The site's calibration and reporting threshold of the model stored in the database at ``url``;
    with no URL, in the default database where one exists (predicting never creates a database)."""
    from app.store import open_store
    from app.store.database import DATABASE_FILE, user_data_dir

    if url is None and not (user_data_dir() / DATABASE_FILE).is_file():
        return SiteSettings()
    store = open_store(url)
    try:
        with store.session() as session:
            return site_settings(session, model_key)
    finally:
        store.dispose()


def exam_json(result: ExamResult, calibration: SiteCalibration | None) -> dict:
    """The result's JSON with its exam-level ``malignancy_score`` and ``calibrated``; with a calibration,
    ``malignancy_probability``, ``decile`` and each breast's ``malignant_calibrated`` too."""
    document = result.to_json() | {
        "malignancy_score": result.malignancy_score,
        "calibrated": calibration is not None,
    }
    if calibration is not None:
        document["malignancy_probability"] = calibration.exam_probability(result.malignancy_score)
        document["decile"] = calibration.decile(result.malignancy_score)
        for side, breast in result.breasts.items():
            document["breasts"][side.value]["malignant_calibrated"] = calibration.breast_probability(
                breast.malignant
            )
    return document


def results_json(run: PredictionRun, predictor: Predictor, calibration: SiteCalibration | None = None) -> str:
    document = {
        "model": asdict(predictor.identity),
        "calibration": None if calibration is None else calibration.to_json(),
        "exams": [exam_json(result, calibration) for result, _ in run.results],
        "errors": run.errors,
    }
    return json.dumps(document, indent=1)


def write_csv(run: PredictionRun, path: Path, calibration: SiteCalibration | None = None) -> None:
    """One row per image as the published runner writes it (``<exam>_<view>``), then one per breast
    (``<exam>_<L|R>``); labels where the exam carries them, full float precision. With a calibration,
    two more columns, filled on the breast rows: the breast's calibrated malignancy probability and the
    exam's 1-10 score."""
    extra = CALIBRATED_CSV_COLUMNS if calibration is not None else ()
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS + extra)
        for result, exam in run.results:
            for view in PUBLISHED_VIEW_ORDER:
                if view in result.views:
                    labels = exam.labels.of(view.laterality) if exam.labels else ("", "")
                    writer.writerow(
                        (
                            f"{result.exam_id}_{view.value}",
                            repr(result.views[view].benign),
                            repr(result.views[view].malignant),
                            *labels,
                            *("" for _ in extra),
                        )
                    )
            for side in (Laterality.LEFT, Laterality.RIGHT):
                if side in result.breasts:
                    labels = exam.labels.of(side) if exam.labels else ("", "")
                    breast = result.breasts[side]
                    writer.writerow(
                        (
                            f"{result.exam_id}_{side.value}",
                            repr(breast.benign),
                            repr(breast.malignant),
                            *labels,
                            *(
                                ()
                                if calibration is None
                                else (
                                    repr(calibration.breast_probability(breast.malignant)),
                                    calibration.decile(result.malignancy_score),
                                )
                            ),
                        )
                    )
