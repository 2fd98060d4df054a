"""Operating points: score thresholds of one model identity, chosen on a labelled calibration set, and
the worklist flags they give.

* ``likely_normal`` comes from a target **sensitivity**: the highest threshold at which at least that
  fraction of the calibration set's cancers score at or above it. An exam scoring below it is
  flagged likely normal (at sensitivity 0.98, at most 2 % of the cancers fall there).
* ``high_suspicion`` comes from a target **specificity**: the lowest threshold at which at least that
  fraction of the normal exams score below it. An exam scoring at or above it is flagged.

A weak model can put the sensitivity threshold above the specificity one; exams between them then
carry both flags, which says exactly that. The unit is the exam: its score is the exam-level malignancy score (the highest of its breasts), its
label whether either breast is malignant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import OperatingPoint, utc_now
from app.triage.pipeline import DEFAULT_OVERLAP, DEFAULT_WORKERS, Failure, Overlap, manifest_job, score_jobs
from gmic_core import metrics
from gmic_core.errors import GMICError
from gmic_core.imaging.views import Laterality
from gmic_core.inference import Predictor
from gmic_core.training.data import read_manifest

HIGH_SUSPICION = "high_suspicion"
LIKELY_NORMAL = "likely_normal"
FLAGS = (HIGH_SUSPICION, LIKELY_NORMAL)
METRIC_OF_FLAG = {LIKELY_NORMAL: "sensitivity", HIGH_SUSPICION: "specificity"}


class CalibrationError(GMICError):
    """A calibration set that cannot give an operating point (one class only, unreadable exams)."""


@dataclass(frozen=True)
class Calibration:
    """The calibration set's exam-level labels and scores, and the operating points chosen on it."""

    source: str
    labels: np.ndarray
    scores: np.ndarray
    points: dict[str, metrics.OperatingPoint]
    targets: dict[str, float]


def choose_operating_points(
    labels: np.ndarray, scores: np.ndarray, sensitivity: float | None, specificity: float | None
) -> dict[str, metrics.OperatingPoint]:
    """The ``likely_normal`` point for ``sensitivity`` and the ``high_suspicion`` point for
    ``specificity`` (either may be None)."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or not labels.any():
        raise CalibrationError(
            f"the calibration set needs malignant and non-malignant exams; it has {int(labels.sum())} "
            f"malignant of {labels.size}"
        )
    points = {}
    for name, target, choose in (
        (LIKELY_NORMAL, sensitivity, metrics.threshold_for_sensitivity),
        (HIGH_SUSPICION, specificity, metrics.threshold_for_specificity),
    ):
        if target is not None:
            if not 0 < target <= 1:
                raise CalibrationError(f"a target {METRIC_OF_FLAG[name]} lies in (0, 1], not {target}")
            points[name] = choose(labels, scores, target)
    return points


def calibrate(
    predictor: Predictor,
    manifest: Path,
    sensitivity: float | None = None,
    specificity: float | None = None,
    overlap: Overlap = DEFAULT_OVERLAP,
    workers: int = DEFAULT_WORKERS,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
) -> Calibration:
    """Score every exam of ``manifest`` (the CSV ``gmic synth`` writes, or its folder) and choose the
    operating points. Every exam must score: a calibration set with unreadable exams raises."""
    if sensitivity is None and specificity is None:
        raise CalibrationError("give a target sensitivity, a target specificity or both")
    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    exams = read_manifest(manifest)
    labels = {
        exam.exam_id: any(
            (exam.breast_labels(side) or (0, 0))[1] for side in (Laterality.LEFT, Laterality.RIGHT)
        )
        for exam in exams
    }
    scores: dict[str, float] = {}
    failures: list[Failure] = []
    for done, outcome in enumerate(
        score_jobs(predictor, map(manifest_job, exams), overlap, workers, cancelled), start=1
    ):
        if outcome.result is not None:
            scores[outcome.key] = outcome.result.malignancy_score
        else:
            assert outcome.failure is not None
            failures.append(outcome.failure)
        if progress is not None:
            progress(done, len(exams))
    if failures:
        reasons = "; ".join(f"{failure.stage}: {failure.error}" for failure in failures[:3])
        raise CalibrationError(f"{len(failures)} calibration exam(s) could not be scored ({reasons})")
    if len(scores) < len(exams):
        raise CalibrationError("calibration cancelled")
    keys = [exam.exam_id for exam in exams]
    label_array = np.array([labels[key] for key in keys])
    score_array = np.array([scores[key] for key in keys])
    points = choose_operating_points(label_array, score_array, sensitivity, specificity)
    targets = {LIKELY_NORMAL: sensitivity, HIGH_SUSPICION: specificity}
    return Calibration(
        str(manifest),
        label_array,
        score_array,
        points,
        {name: target for name, target in targets.items() if target is not None},
    )


def save_operating_points(session: Session, model_key: str, calibration: Calibration) -> list[OperatingPoint]:
    """Store the calibration's points with the model, replacing that model's earlier ones of the same
    name."""
    rows = []
    for name, point in calibration.points.items():
        row = session.scalar(
            select(OperatingPoint).where(OperatingPoint.model_key == model_key, OperatingPoint.name == name)
        )
        if row is None:
            row = OperatingPoint(model_key=model_key, name=name)
            session.add(row)
        row.metric = METRIC_OF_FLAG[name]
        row.target = calibration.targets[name]
        row.threshold = point.threshold
        row.sensitivity = point.sensitivity
        row.specificity = point.specificity
        row.calibration_set = calibration.source
        row.exams = int(calibration.labels.size)
        row.positives = int(calibration.labels.sum())
        row.created_at = utc_now()
        rows.append(row)
    session.flush()
    return rows


def operating_points(session: Session, model_key: str) -> dict[str, OperatingPoint]:
    """The stored operating points of a model, by flag name."""
    rows = session.scalars(select(OperatingPoint).where(OperatingPoint.model_key == model_key))
    return {row.name: row for row in rows}


def flags_for(score: float, points: Mapping[str, OperatingPoint]) -> tuple[str, ...]:
    """The flags an exam-level score earns under a model's operating points."""
    flags = []
    if (point := points.get(HIGH_SUSPICION)) is not None and score >= point.threshold:
        flags.append(HIGH_SUSPICION)
    if (point := points.get(LIKELY_NORMAL)) is not None and score < point.threshold:
        flags.append(LIKELY_NORMAL)
    return tuple(flags)
