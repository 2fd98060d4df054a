"""``gmic predict``: GMIC on exams from disk, written as JSON or as the published runner's CSV."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gmic_core.errors import ExamError, GMICError
from gmic_core.imaging import Exam, find_exams
from gmic_core.imaging.views import PUBLISHED_VIEW_ORDER, Laterality
from gmic_core.inference import ExamResult, Predictor, ViewImage, load_standard_views
from gmic_core.visualize import save_view

log = logging.getLogger(__name__)

CSV_COLUMNS = ("image_index", "benign_pred", "malignant_pred", "benign_label", "malignant_label")


@dataclass
class PredictionRun:
    results: list[tuple[ExamResult, Exam]] = field(default_factory=list)
    errors: list[dict[str, str | None]] = field(default_factory=list)


def predict_paths(
    predictor: Predictor, paths: Sequence[Path], visualize: Path | None = None
) -> PredictionRun:
    """Run every exam :func:`~gmic_core.imaging.find_exams` finds at ``paths`` (folders, DICOM files,
    exam.json manifests). A path, file or exam that cannot be used, and an image kept but not scored
    (a spot compression view, ...), is recorded in ``errors``; the others go on."""
    run = PredictionRun()
    found = find_exams(paths)
    exam_of = {ref.source: exam.exam_id for exam in found.exams for ref in exam.extra_images}
    for file, message in found.failures:
        run.errors.append({"path": str(file), "exam_id": None, "error": message})
    for file, message in found.not_scored:
        run.errors.append({"path": str(file), "exam_id": exam_of[file], "error": message})
    for exam in found.exams:
        try:
            if not exam.images:
                raise ExamError(f"exam {exam.exam_id}: none of the standard views R-CC, L-CC, R-MLO, L-MLO")
            mammograms = load_standard_views(exam)
            images = {view: ViewImage(m.pixels, exam.horizontal_flip) for view, m in mammograms.items()}
            result = predictor.predict(exam.exam_id, images)
        except GMICError as error:
            log.warning("exam from %s could not be processed: %s", exam.source, error)
            run.errors.append({"path": str(exam.source), "exam_id": exam.exam_id, "error": str(error)})
            continue
        run.results.append((result, exam))
        if visualize is not None:
            for view, view_result in result.views.items():
                target = visualize / f"{exam.exam_id}_{view.value}.png"
                save_view(mammograms[view].display(), view_result, target)
    return run


def results_json(run: PredictionRun, predictor: Predictor) -> str:
    document = {
        "model": asdict(predictor.identity),
        "exams": [result.to_json() for result, _ in run.results],
        "errors": run.errors,
    }
    return json.dumps(document, indent=1)


def write_csv(run: PredictionRun, path: Path) -> None:
    """One row per image as the published runner writes it (``<exam>_<view>``), then one per breast
    (``<exam>_<L|R>``); labels where the exam carries them, full float precision."""
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_COLUMNS)
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
                        )
                    )
