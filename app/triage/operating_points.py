"""The calibration set: a site's labelled exams scored by one model identity, the calibration of its
scores fitted on them (:mod:`gmic_core.calibration`) and the operating points chosen on them, with the
worklist flags they give.

* ``likely_normal`` comes from a target **sensitivity**: the highest threshold at which at least that
  fraction of the calibration set's cancers score at or above it. An exam scoring below it is
  flagged likely normal (at sensitivity 0.98, at most 2 % of the cancers fall there).
* ``high_suspicion`` comes from a target **specificity**: the lowest threshold at which at least that
  fraction of the normal exams score below it. An exam scoring at or above it is flagged.
* ``flag_top`` comes from a target **fraction of exams flagged** (a screening programme's "flag the
  top 10 %"): the lowest threshold at which at most that fraction of all the calibration set's exams,
  malignant or not, score at or above it. An exam scoring at or above it is flagged. Exams tied at the
  cut-off are flagged together or not at all, so the fraction reached may fall short of the target.

Thresholds are on the raw score scale, whatever the calibration: a calibration is monotone, so a
threshold on the raw score is the same rule as one on the calibrated probability, and points stay
valid when the calibration is fitted again.

A weak model can put the sensitivity threshold above the specificity one; exams between them then
carry both flags, which says exactly that. The unit is the exam: its score is the exam-level malignancy score (the highest of its breasts), its
label whether either breast is malignant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.defaults import (
    DEFAULT_OVERLAP,
    DEFAULT_WORKERS,
    FLAG_TOP,
    HIGH_SUSPICION,
    LIKELY_NORMAL,
    Overlap,
)
from app.store.models import OperatingPoint, ScoreCalibration, utc_now
from app.triage.pipeline import Failure, manifest_job, score_jobs
from gmic_core import metrics
from gmic_core.calibration import AUTO, Deciles, Method, SiteCalibration, fit_calibration
from gmic_core.errors import CalibrationError
from gmic_core.imaging.views import Laterality
from gmic_core.inference import Predictor
from gmic_core.reporting.findings import DEFAULT_THRESHOLD
from gmic_core.training.data import read_manifest

METRIC_OF_FLAG = {LIKELY_NORMAL: "sensitivity", HIGH_SUSPICION: "specificity", FLAG_TOP: "flag_fraction"}


@dataclass(frozen=True)
class Calibration:
    """The calibration set's exam-level and breast-level labels and raw malignancy scores, the site
    calibration fitted on them and the operating points chosen on the exams."""

    source: str
    labels: np.ndarray
    scores: np.ndarray
    breast_labels: np.ndarray
    breast_scores: np.ndarray
    site: SiteCalibration
    points: dict[str, metrics.OperatingPoint]
    targets: dict[str, float]


def choose_operating_points(
    labels: np.ndarray,
    scores: np.ndarray,
    sensitivity: float | None,
    specificity: float | None,
    flag_fraction: float | None = None,
) -> dict[str, metrics.OperatingPoint]:
    """The ``likely_normal`` point for ``sensitivity``, the ``high_suspicion`` point for
    ``specificity`` and the ``flag_top`` point for ``flag_fraction`` (each may be None)."""
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
        (FLAG_TOP, flag_fraction, metrics.threshold_for_flag_fraction),
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
    flag_fraction: float | None = None,
    method: Method | Literal["auto"] = AUTO,
) -> Calibration:
    """Score every exam of ``manifest`` (the CSV ``gmic synth`` writes, or its folder), fit the
    calibration of the exam and breast malignancy scores (``method``, see
    :func:`gmic_core.calibration.fit_calibration`) and choose the operating points of the targets given
    (none is needed: the calibration is fitted anyway). Every exam must score: a calibration set with
    unreadable exams raises."""
    manifest = Path(manifest)
    if manifest.is_dir():
        manifest = manifest / "manifest.csv"
    exams = read_manifest(manifest)
    scores: dict[str, dict[Laterality, float]] = {}  # per exam, the breasts' malignancy scores
    failures: list[Failure] = []
    for done, outcome in enumerate(
        score_jobs(
            predictor, (manifest_job(exam, predictor.decoding) for exam in exams), overlap, workers, cancelled
        ),
        start=1,
    ):
        if outcome.result is not None:
            scores[outcome.key] = {side: breast.malignant for side, breast in outcome.result.breasts.items()}
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

    def malignant(exam, side: Laterality) -> bool:
        return bool((exam.breast_labels(side) or (0, 0))[1])

    breast_labels = np.array([malignant(exam, side) for exam in exams for side in scores[exam.exam_id]])
    breast_scores = np.array([score for exam in exams for score in scores[exam.exam_id].values()])
    # the exam: malignant when a breast is, scored by its highest breast (as ExamResult.malignancy_score)
    label_array = np.array(
        [malignant(exam, Laterality.LEFT) or malignant(exam, Laterality.RIGHT) for exam in exams]
    )
    score_array = np.array([max(scores[exam.exam_id].values()) for exam in exams])
    site = SiteCalibration(
        fit_calibration(label_array, score_array, method),
        fit_calibration(breast_labels, breast_scores, method),
        Deciles.of(score_array),
    )
    points = choose_operating_points(label_array, score_array, sensitivity, specificity, flag_fraction)
    targets = {LIKELY_NORMAL: sensitivity, HIGH_SUSPICION: specificity, FLAG_TOP: flag_fraction}
    return Calibration(
        str(manifest),
        label_array,
        score_array,
        breast_labels,
        breast_scores,
        site,
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
        row.flagged_fraction = float((calibration.scores >= point.threshold).mean())
        row.calibration_set = calibration.source
        row.exams = int(calibration.labels.size)
        row.positives = int(calibration.labels.sum())
        row.created_at = utc_now()
        rows.append(row)
    session.flush()
    return rows


def save_calibration(session: Session, model_key: str, calibration: Calibration) -> ScoreCalibration:
    """Store the calibration set's site calibration with the model, replacing the model's earlier one."""
    row = session.scalar(select(ScoreCalibration).where(ScoreCalibration.model_key == model_key))
    if row is None:
        row = ScoreCalibration(model_key=model_key)
        session.add(row)
    row.calibration = calibration.site.to_json()
    row.calibration_set = calibration.source
    row.exams = int(calibration.labels.size)
    row.positives = int(calibration.labels.sum())
    row.created_at = utc_now()
    session.flush()
    return row


def stored_calibration(session: Session, model_key: str) -> SiteCalibration | None:
    """The stored site calibration of a model, or None where it has none (its scores are then shown
    as uncalibrated)."""
    document = session.scalar(
        select(ScoreCalibration.calibration).where(ScoreCalibration.model_key == model_key)
    )
    return None if document is None else SiteCalibration.from_json(document)


@dataclass(frozen=True)
class SiteSettings:
    """What a site stored for one model and the results it exports use: its calibration (None where it
    has none) and the saliency level of the regions reported as DICOM findings, its ``high_suspicion``
    operating point where one is stored (a region of the map above the threshold that flags an exam),
    else the reporting default."""

    calibration: SiteCalibration | None = None
    report_threshold: float = DEFAULT_THRESHOLD


def site_settings(session: Session, model_key: str) -> SiteSettings:
    point = operating_points(session, model_key).get(HIGH_SUSPICION)
    return SiteSettings(
        stored_calibration(session, model_key), DEFAULT_THRESHOLD if point is None else point.threshold
    )


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
    if (point := points.get(FLAG_TOP)) is not None and score >= point.threshold:
        flags.append(FLAG_TOP)
    return tuple(flags)
