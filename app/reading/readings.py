"""A reader's estimate, from the widget to the database, in one place.

:class:`Estimate` is the one type of a reader's assessment of one breast: probability of malignancy
as a fraction in [0, 1] (DESIGN.md conventions), BI-RADS 0-6 and the recall decision. The reader types
percent: :func:`from_percent` and :func:`to_percent` are the only conversions, at the widget and at
the ``readings.probability`` column (stored in percent since migration 0001). :func:`hybrid_score` is
the one hybrid, and :func:`reading_row` the one builder of a ``readings`` row, used by the workstation
(:func:`save_reading`, outside studies) and the study service (:mod:`app.study.service`).

Workstation readings (``study_id`` NULL) are committed the moment the reader gives them and never
edited: a changed estimate is a new row with the next ``revision`` that ``supersedes`` the previous
one; a unique index (migration 0004) makes two workstations that race for the same revision fail
cleanly, and the loser takes the next one.
"""

from __future__ import annotations

import math
import random
import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.store.database import Store, StoreError
from app.store.models import Exam, Phase, Reader, Reading, utc_now
from app.store.results import ensure_exam
from gmic_core.errors import GMICError
from gmic_core.imaging.views import Laterality
from gmic_core.metrics import hybrid

PERCENT = 100.0  # the reader's unit (DESIGN.md conventions: readers enter 0-100 %)
BIRADS_CATEGORIES = range(7)  # BI-RADS 0-6
HIGH_PROBABILITY = 0.5  # an estimate at or above this contradicts a negative BI-RADS or no recall
READER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,62}")  # fits a PostgreSQL role name
SAVE_ATTEMPTS = 10  # a workstation reading whose revision another workstation took is tried again
# Before each new try, a random pause of up to 10 ms x 2^(try - 1), at most RETRY_MAX_S: two writers in
# lockstep would otherwise collide again at once, and a writer that keeps winning (a second window
# recording a run of estimates) could make the other lose every immediate retry (seen under CI load).
RETRY_BASE_S = 0.01
RETRY_MAX_S = 0.5


class ReadingError(GMICError):
    """A reading that cannot be recorded as given."""


class InvalidReadingError(ReadingError, ValueError):
    """A reading with values out of range, no reader, or breasts that the case does not have."""


def from_percent(value: float) -> float:
    """The fraction for a probability the reader gave in percent."""
    return value / PERCENT


def to_percent(probability: float) -> float:
    """Percent for a probability in [0, 1] (rounded to 1e-6 %, so that 0.85 stores as 85.0)."""
    return round(probability * PERCENT, 6)


@dataclass(frozen=True)
class Estimate:
    """One reader's assessment of one breast; each answer may be unset (None) while the reader is still
    at it, but a recorded reading has a probability, and a study reading (by default) every answer.
    Values of the wrong type (``True`` as a BI-RADS category or a probability) are refused."""

    probability: float | None = None
    birads: int | None = None
    recall: bool | None = None

    def __post_init__(self) -> None:
        probability = self.probability
        if probability is not None and (
            isinstance(probability, bool)
            or not isinstance(probability, int | float)
            or not math.isfinite(probability)
            or not 0 <= probability <= 1
        ):
            raise InvalidReadingError(
                f"a probability of malignancy is a number in [0, 1] (0-100 %), got {probability!r}"
            )
        if self.birads is not None and (
            isinstance(self.birads, bool)
            or not isinstance(self.birads, int)
            or self.birads not in BIRADS_CATEGORIES
        ):
            raise InvalidReadingError(f"BI-RADS is a category 0-6, got {self.birads!r}")
        if self.recall is not None and not isinstance(self.recall, bool):
            raise InvalidReadingError(f"recall is yes or no (True or False), got {self.recall!r}")

    def missing(self) -> tuple[str, ...]:
        """The answers not given."""
        return tuple(
            name
            for name, value in (
                ("probability", self.probability),
                ("BI-RADS", self.birads),
                ("recall", self.recall),
            )
            if value is None
        )

    def contradictions(self) -> tuple[str, ...]:
        """Answers that disagree with each other, which the reader must confirm (BI-RADS ATLAS, 5th
        edition: 0 calls the woman back for more imaging, 1-2 are negative, 4-5 call for a biopsy)."""
        found = []
        high = self.probability is not None and self.probability >= HIGH_PROBABILITY
        if high and self.birads in (1, 2):
            found.append(f"a probability of {to_percent(self.probability):g} % with BI-RADS {self.birads}")
        if high and self.recall is False:
            found.append(f"a probability of {to_percent(self.probability):g} % without recall")
        if self.birads in (0, 4, 5) and self.recall is False:
            found.append(f"BI-RADS {self.birads} without recall")
        return tuple(found)


@dataclass(frozen=True)
class ModelShown:
    """What the reader saw of the model next to an estimate: its malignancy probability (0-1) for the
    breast and lambda of the hybrid."""

    score: float
    hybrid_weight: float


def hybrid_score(probability: float | None, model: float | None, weight: float) -> float | None:
    """``weight * reader + (1 - weight) * model`` (DESIGN.md, data flow 5), both in [0, 1]; None until
    both exist."""
    if probability is None or model is None:
        return None
    return float(hybrid(probability, model, weight))


def reading_row(
    *,
    submission_key: str,
    reader_id: int,
    exam_id: int,
    side: Laterality,
    estimate: Estimate,
    phase: Phase,
    model: ModelShown | None,
    previous: Reading | None,
    started_at: datetime,
    submitted_at: datetime,
    study_id: int | None = None,
    study_case_id: int | None = None,
    paused_s: float = 0.0,
    confirmed: str | None = None,
) -> Reading:
    """The ``readings`` row recording ``estimate``: revision 0, or the next after ``previous``, which
    it supersedes. ``model`` is what was on screen, so ``ai_shown`` records what was shown. The
    reading time runs from ``started_at`` to ``submitted_at`` less ``paused_s``; ``confirmed`` names
    the contradictions the reader confirmed. A BI-RADS or recall not given is stored as unknown (NULL),
    never as "no"; studies that require them refuse the estimate before it gets here."""
    if estimate.probability is None:
        raise InvalidReadingError(f"breast {side.value}: give a probability of malignancy")
    started = min(started_at, submitted_at)
    elapsed = (submitted_at - started).total_seconds()
    return Reading(
        submission_key=submission_key,
        study_id=study_id,
        reader_id=reader_id,
        exam_id=exam_id,
        study_case_id=study_case_id,
        laterality=side.value,
        phase=phase.value,
        revision=0 if previous is None else previous.revision + 1,
        supersedes_id=None if previous is None else previous.id,
        probability=to_percent(estimate.probability),
        birads=estimate.birads,
        recall=estimate.recall,
        ai_shown=model is not None,
        model_score=None if model is None else model.score,
        hybrid_weight=None if model is None else model.hybrid_weight,
        hybrid=None
        if model is None
        else hybrid_score(estimate.probability, model.score, model.hybrid_weight),
        started_at=started,
        submitted_at=submitted_at,
        duration_s=max(elapsed - paused_s, 0.0),
        paused_s=min(paused_s, elapsed),
        confirmed=confirmed,
    )


def estimate_of(row: Reading) -> Estimate:
    """The estimate a stored reading records."""
    return Estimate(from_percent(row.probability), row.birads, row.recall)


def reader_id(name: str) -> str:
    """``name`` as a reader id: surrounding space removed, checked against :data:`READER_ID`. Ids are
    matched without regard to case (:func:`find_reader`)."""
    given = " ".join(name.split())
    if not given:
        raise InvalidReadingError("choose a reader")
    if not READER_ID.fullmatch(given):
        raise InvalidReadingError(
            f"{name!r} is not a usable reader id: up to 63 letters, digits, spaces and . _ @ -, "
            "beginning with a letter or digit"
        )
    return given


def is_reader(name: str) -> ColumnElement[bool]:
    """A condition: the reader (``readers`` row) has the id ``name``, up to case and surrounding space."""
    return func.lower(Reader.name) == reader_id(name).lower()


def find_reader(session: Session, name: str) -> Reader | None:
    """The registered reader whose id is ``name`` up to case and surrounding space."""
    return session.scalar(select(Reader).where(is_reader(name)).limit(1))


def ensure_reader(session: Session, name: str) -> Reader:
    """The reader called ``name`` (up to case and surrounding space), registered on first use."""
    reader = find_reader(session, name)
    if reader is None:
        reader = Reader(name=reader_id(name))
        session.add(reader)
        session.flush()
    return reader


def save_reading(
    store: Store,
    reader: str,
    exam_key: str,
    side: Laterality,
    estimate: Estimate,
    model: ModelShown | None = None,
    started_at: datetime | None = None,
) -> int:
    """Record ``reader``'s workstation ``estimate`` for breast ``side`` of the exam, committed before
    this returns; returns the reading's id. ``started_at`` (default: now) is when the reader began."""
    attempt = 1
    while True:
        try:
            return _save_reading(store, reader, exam_key, side, estimate, model, started_at)
        except IntegrityError as error:  # another workstation took this revision (or the reader) first
            if attempt == SAVE_ATTEMPTS:
                raise StoreError(
                    f"the reading could not be saved: other workstations wrote readings of this breast "
                    f"{SAVE_ATTEMPTS} times at the same moment; give the estimate again"
                ) from error
            time.sleep(random.uniform(0, min(RETRY_MAX_S, RETRY_BASE_S * 2 ** (attempt - 1))))
            attempt += 1
        except SQLAlchemyError as error:
            raise StoreError(f"the reading could not be saved: {error}") from error


def _save_reading(
    store: Store,
    reader: str,
    exam_key: str,
    side: Laterality,
    estimate: Estimate,
    model: ModelShown | None,
    started_at: datetime | None,
) -> int:
    with store.session() as session:
        reader_id = ensure_reader(session, reader).id
        exam = ensure_exam(session, exam_key)
        submitted = utc_now()
        reading = reading_row(
            submission_key=uuid.uuid4().hex,
            reader_id=reader_id,
            exam_id=exam.id,
            side=side,
            estimate=estimate,
            phase=Phase.UNAIDED if model is None else Phase.AIDED,
            model=model,
            previous=_latest(session, reader_id, exam.id, side),
            started_at=started_at or submitted,
            submitted_at=submitted,
        )
        session.add(reading)
        session.flush()
        return reading.id


def load_readings(store: Store, reader: str, exam_key: str) -> dict[Laterality, Estimate]:
    """``reader``'s latest workstation estimate per breast of the exam (breasts never read are absent)."""
    try:
        with store.session() as session:
            rows = session.scalars(
                select(Reading)
                .join(Exam, Reading.exam_id == Exam.id)
                .join(Reader, Reading.reader_id == Reader.id)
                .where(is_reader(reader), Exam.exam_key == exam_key, Reading.study_id.is_(None))
                .order_by(Reading.revision)
            )
            return {Laterality(row.laterality): estimate_of(row) for row in rows}
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
