"""The ranked worklist: every exam the model scored, most suspicious first, with the flags of the
model's operating points; then every exam or file triage could not score, with the reason.

Where the model has a site calibration (``gmic calibrate``), each scored exam also carries its
calibrated malignancy probability and its 1-10 decile score, computed here from the stored raw score
and the stored calibration (so a new calibration takes effect at once); the raw score is kept and the
ranking and flags follow it (a calibration is monotone, so the order is the same up to ties)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.defaults import Sort
from app.store.models import BreastPrediction, Exam, ModelRun, TriageFailure, TriageRun
from app.triage.operating_points import flags_for, operating_points, stored_calibration

SCORED, FAILED = "scored", "failed"


@dataclass(frozen=True)
class WorklistRow:
    """``exam_id`` is None for a file that belongs to no exam (its path is in ``error``). ``score`` is
    the raw exam-level malignancy score; ``probability`` and ``decile`` its calibrated probability and
    1-10 score, None where the model has no calibration (or the exam failed)."""

    exam_id: str | None
    score: float | None
    flags: tuple[str, ...]
    status: str  # scored or failed
    error: str | None = None
    probability: float | None = None
    decile: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "exam_id": self.exam_id,
            "score": self.score,
            "calibrated": self.probability is not None,
            "probability": self.probability,
            "decile": self.decile,
            "flags": list(self.flags),
            "status": self.status,
            "error": self.error,
        }


def latest_model_key(session: Session) -> str | None:
    """The model of the most recent triage run, the worklist's default."""
    return session.scalar(select(TriageRun.model_key).order_by(TriageRun.id.desc()).limit(1))


def worklist(
    session: Session, model_key: str, sort: Sort = "score", flags: Collection[str] = ()
) -> list[WorklistRow]:
    """The worklist of ``model_key`` (``ModelIdentity.key``). ``sort`` "score": highest exam-level
    malignancy score first (ties by exam id), failures after the scored exams; "exam": by exam id.
    ``flags``: keep only exams with at least one of these flags (failures then drop out)."""
    latest = (
        select(func.max(ModelRun.id).label("run_id"))
        .where(ModelRun.model_key == model_key)
        .group_by(ModelRun.exam_id)
        .subquery()
    )
    scored = session.execute(
        select(Exam.exam_key, func.max(BreastPrediction.malignant))
        .join(ModelRun, ModelRun.exam_id == Exam.id)
        .join(latest, latest.c.run_id == ModelRun.id)
        .join(BreastPrediction, BreastPrediction.model_run_id == ModelRun.id)
        .group_by(Exam.exam_key)
    ).all()
    points = operating_points(session, model_key)
    calibration = stored_calibration(session, model_key)
    rows = [
        WorklistRow(
            key,
            float(score),
            flags_for(float(score), points),
            SCORED,
            probability=None if calibration is None else calibration.exam_probability(score),
            decile=None if calibration is None else calibration.decile(score),
        )
        for key, score in scored
    ]
    failures = session.execute(
        select(Exam.exam_key, TriageFailure.path, TriageFailure.stage, TriageFailure.error).outerjoin(
            Exam, Exam.id == TriageFailure.exam_id
        )
    ).all()
    scored_keys = {row.exam_id for row in rows}
    failed = [
        WorklistRow(key, None, (), FAILED, f"{stage}: {error}")
        for key, path, stage, error in sorted(failures, key=lambda f: (f[0] is None, f[0] or f[1]))
        if key not in scored_keys  # scored by this model, failed since with another
    ]
    if sort == "score":
        rows.sort(key=lambda row: (-row.score, row.exam_id))  # type: ignore[operator]
    else:
        rows.sort(key=lambda row: row.exam_id)
    if flags:
        return [row for row in rows if set(row.flags) & set(flags)]
    return rows + failed


def to_json(rows: Sequence[WorklistRow]) -> str:
    return json.dumps([row.to_json() for row in rows], indent=1)


def to_csv(rows: Sequence[WorklistRow]) -> str:
    """``score`` is the raw score; ``probability`` (calibrated) and ``decile`` are empty where the model
    has no calibration."""
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(("rank", "exam_id", "score", "probability", "decile", "flags", "status", "error"))
    for rank, row in enumerate(rows, start=1):
        writer.writerow(
            (
                rank,
                row.exam_id or "",
                _text(row.score, repr),
                _text(row.probability, repr),
                _text(row.decile, str),
                ";".join(row.flags),
                row.status,
                row.error or "",
            )
        )
    return stream.getvalue()


def _text(value: float | int | None, form: Callable[[Any], str]) -> str:
    return "" if value is None else form(value)


def to_table(rows: Sequence[WorklistRow]) -> str:
    """With a calibration: the calibrated probability, the 1-10 score and the raw score; without, the
    raw score headed as uncalibrated."""
    calibrated = any(row.probability is not None for row in rows)
    header = (
        ("#", "exam", "calibrated p", "1-10", "raw score", "flags", "status / error")
        if calibrated
        else ("#", "exam", "score (uncalibrated)", "flags", "status / error")
    )
    lines = [
        (
            str(rank),
            row.exam_id or "-",
            *((_text(row.probability, "{:.3f}".format), _text(row.decile, str)) if calibrated else ()),
            _text(row.score, "{:.4f}".format),
            ", ".join(flag.replace("_", " ") for flag in row.flags),
            row.status if row.error is None else f"{row.status}: {row.error}",
        )
        for rank, row in enumerate(rows, start=1)
    ]
    widths = [max(len(cells[i]) for cells in (header, *lines)) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)), cells[-1]]
        ).rstrip()
        for cells in (header, *lines)
    )
