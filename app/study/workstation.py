"""Readings outside reader studies: the estimate a radiologist enters on the workstation, per exam
and breast, kept in the store's ``readings`` table with no study (``study_id`` NULL).

Every call commits in its own transaction before it returns, so an estimate survives a restart or a
crash the moment it is entered. Readings stay immutable, as in studies: a changed estimate is a new
reading with the next ``revision`` that ``supersedes`` the previous one, and loading gives the latest.
A reader only ever loads their own readings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.store.database import Store, StoreError
from app.store.models import Exam, Phase, Reader, Reading, utc_now
from app.store.results import ensure_exam
from app.study.service import BreastEstimate, StudyError, ensure_reader, validate_estimate
from gmic_core.imaging.views import Laterality
from gmic_core.metrics import hybrid


@dataclass(frozen=True)
class ModelShown:
    """The model's malignancy probability (0-1) shown next to the estimate, and lambda of the hybrid."""

    score: float
    hybrid_weight: float


def save_reading(
    store: Store,
    reader: str,
    exam_key: str,
    side: Laterality,
    estimate: BreastEstimate,
    model: ModelShown | None = None,
    started_at: datetime | None = None,
) -> int:
    """Record ``reader``'s ``estimate`` for breast ``side`` of the exam; returns the reading's id.
    ``started_at`` (default: now) is when the reader began on the exam."""
    if not reader.strip():
        raise StudyError("choose a reader")
    validate_estimate(side, estimate)
    try:
        with store.session() as session:
            reader_id = ensure_reader(session, reader).id
            exam = ensure_exam(session, exam_key)
            previous = _latest(session, reader_id, exam.id, side)
            submitted = utc_now()
            started = min(started_at or submitted, submitted)
            reading = Reading(
                submission_key=uuid.uuid4().hex,
                study_id=None,
                reader_id=reader_id,
                exam_id=exam.id,
                study_case_id=None,
                laterality=side.value,
                phase=(Phase.UNAIDED if model is None else Phase.AIDED).value,
                revision=0 if previous is None else previous.revision + 1,
                supersedes_id=None if previous is None else previous.id,
                probability=float(estimate.probability),
                birads=estimate.birads,
                recall=bool(estimate.recall),
                ai_shown=model is not None,
                model_score=None if model is None else model.score,
                hybrid_weight=None if model is None else model.hybrid_weight,
                hybrid=None
                if model is None
                else float(hybrid(estimate.probability / 100, model.score, model.hybrid_weight)),
                started_at=started,
                submitted_at=submitted,
                duration_s=(submitted - started).total_seconds(),
            )
            session.add(reading)
            session.flush()
            return reading.id
    except SQLAlchemyError as error:
        raise StoreError(f"the reading could not be saved: {error}") from error


def load_readings(store: Store, reader: str, exam_key: str) -> dict[Laterality, BreastEstimate]:
    """``reader``'s latest workstation estimate per breast of the exam (breasts never read are absent)."""
    try:
        with store.session() as session:
            rows = session.scalars(
                select(Reading)
                .join(Exam, Reading.exam_id == Exam.id)
                .join(Reader, Reading.reader_id == Reader.id)
                .where(Reader.name == reader, Exam.exam_key == exam_key, Reading.study_id.is_(None))
                .order_by(Reading.revision)
            )
            return {
                Laterality(row.laterality): BreastEstimate(row.probability, row.recall, row.birads)
                for row in rows
            }
    except SQLAlchemyError as error:
        raise StoreError(f"the readings could not be loaded: {error}") from error


def _latest(session: Session, reader_id: int, exam_id: int, side: Laterality) -> Reading | None:
    return session.scalar(
        select(Reading)
        .where(
            Reading.study_id.is_(None),
            Reading.reader_id == reader_id,
            Reading.exam_id == exam_id,
            Reading.laterality == side.value,
        )
        .order_by(Reading.revision.desc())
        .limit(1)
    )
