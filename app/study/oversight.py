"""The coordinator's view of studies: the list, one study's design and progress per reader, and the
export of every reading. Reads what a reader's database role may not (every reader's rows, the
seed and orders, exclusions); a reader's session never calls it.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.store.database import Store
from app.store.models import (
    Assignment,
    Enrolment,
    Exclusion,
    GroundTruth,
    Protocol,
    Reader,
    Reading,
    Study,
    StudyCase,
)
from app.study.service import PHASES, StudyError, _study, second_session_order

EXPORT_COLUMNS = (
    "reading_id", "reader", "case", "breast", "truth", "phase", "revision", "supersedes",
    "probability_percent", "birads", "recall", "ai_shown", "model_score", "hybrid_weight", "hybrid",
    "started_at", "submitted_at", "duration_s", "paused_s", "confirmed", "submission_key", "excluded",
)  # fmt: skip


@dataclass(frozen=True)
class StudySummary:
    name: str
    protocol: str
    cases: int
    readers: int
    created_at: datetime


@dataclass(frozen=True)
class ReaderProgress:
    reader: str
    position: int  # enrolment order: the row of the balanced design
    aided_first: bool
    order: tuple[str, ...]  # case keys in reading order
    second_order: tuple[str, ...]  # a crossover's second session, in its own order; otherwise empty
    done: int  # cases with every phase read
    total: int
    median_duration_s: float | None  # over the latest readings
    excluded: str | None  # the reason, when excluded


@dataclass(frozen=True)
class StudyOverview:
    name: str
    protocol: str
    seed: int
    model_key: str | None
    hybrid_weight: float
    washout_days: float | None
    require_assessment: bool
    confirm_submit: bool
    cases: int
    readers: tuple[ReaderProgress, ...]


def list_studies(store: Store) -> list[StudySummary]:
    with store.session() as session:
        cases = select(func.count()).where(StudyCase.study_id == Study.id).scalar_subquery()
        readers = select(func.count()).where(Enrolment.study_id == Study.id).scalar_subquery()
        return [
            StudySummary(name, protocol, n_cases, n_readers, created)
            for name, protocol, n_cases, n_readers, created in session.execute(
                select(Study.name, Study.protocol, cases, readers, Study.created_at).order_by(Study.name)
            )
        ]


def overview(store: Store, name: str) -> StudyOverview:
    with store.session() as session:
        study = _study(session, name)
        excluded = dict(
            session.execute(
                select(Exclusion.reader_id, Exclusion.reason).where(
                    Exclusion.study_id == study.id, Exclusion.reader_id.is_not(None)
                )
            ).all()
        )
        readers = tuple(
            _progress(session, study, enrolment, excluded.get(enrolment.reader_id))
            for enrolment in session.scalars(
                select(Enrolment).where(Enrolment.study_id == study.id).order_by(Enrolment.position)
            )
        )
        return StudyOverview(
            study.name,
            study.protocol,
            study.seed,
            study.model_key,
            study.hybrid_weight,
            study.washout_days,
            study.require_assessment,
            study.confirm_submit,
            len(study.cases),
            readers,
        )


def _progress(session: Session, study: Study, enrolment: Enrolment, excluded: str | None) -> ReaderProgress:
    assignments = list(
        session.scalars(
            select(Assignment)
            .where(Assignment.study_id == study.id, Assignment.reader_id == enrolment.reader_id)
            .order_by(Assignment.position)
        )
    )
    order = tuple(assignment.study_case.case_key for assignment in assignments)
    second = ()
    if study.protocol == Protocol.CROSSOVER:
        case_ids = [case.id for case in study.cases]
        reordered = second_session_order(assignments, case_ids, study.seed, enrolment.position)
        second = tuple(assignment.study_case.case_key for assignment in reordered)
    latest: dict[tuple[int, str, str], Reading] = {}
    for reading in session.scalars(
        select(Reading)
        .where(Reading.study_id == study.id, Reading.reader_id == enrolment.reader_id)
        .order_by(Reading.id)
    ):
        latest[(reading.study_case_id, reading.laterality, reading.phase)] = reading
    phases = {phase.value for phase in PHASES[study.protocol]}
    read: dict[int, set[str]] = {}
    for case_id, _side, phase in latest:
        read.setdefault(case_id, set()).add(phase)
    durations = [reading.duration_s for reading in latest.values()]
    return ReaderProgress(
        enrolment.reader.name,
        enrolment.position,
        enrolment.aided_first,
        order,
        second,
        sum(phases <= done for done in read.values()),
        len(order),
        statistics.median(durations) if durations else None,
        excluded,
    )


def export_readings(store: Store, name: str, path: Path) -> int:
    """Every reading of the study, every revision, with the truth and any exclusion, as CSV; returns
    how many."""
    with store.session() as session:
        study = _study(session, name)
        truth = {
            (case_id, side): malignant
            for case_id, side, malignant in session.execute(
                select(GroundTruth.study_case_id, GroundTruth.laterality, GroundTruth.malignant)
                .join(StudyCase, GroundTruth.study_case_id == StudyCase.id)
                .where(StudyCase.study_id == study.id)
            )
        }
        by_reader, by_reading = {}, {}
        for reader_id, reading_id, reason in session.execute(
            select(Exclusion.reader_id, Exclusion.reading_id, Exclusion.reason).where(
                Exclusion.study_id == study.id
            )
        ):
            if reader_id is not None:
                by_reader[reader_id] = f"reader: {reason}"
            if reading_id is not None:
                by_reading[reading_id] = f"reading: {reason}"
        rows = session.execute(
            select(Reading, Reader.name, StudyCase.case_key)
            .join(Reader, Reading.reader_id == Reader.id)
            .join(StudyCase, Reading.study_case_id == StudyCase.id)
            .where(Reading.study_id == study.id)
            .order_by(Reading.id)
        ).all()
        if not rows:
            raise StudyError(f"study {name!r} has no readings yet: nothing to export")
        with path.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(EXPORT_COLUMNS)
            for reading, reader, case_key in rows:
                malignant = truth.get((reading.study_case_id, reading.laterality))
                writer.writerow(
                    [
                        reading.id, reader, case_key, reading.laterality,
                        "" if malignant is None else int(malignant), reading.phase, reading.revision,
                        reading.supersedes_id or "", reading.probability,
                        "" if reading.birads is None else reading.birads, "" if reading.recall is None else int(reading.recall),
                        int(reading.ai_shown), _blank(reading.model_score), _blank(reading.hybrid_weight),
                        _blank(reading.hybrid), reading.started_at.isoformat(),
                        reading.submitted_at.isoformat(), reading.duration_s, _blank(reading.paused_s),
                        reading.confirmed or "", reading.submission_key,
                        by_reader.get(reading.reader_id) or by_reading.get(reading.id, ""),
                    ]
                )  # fmt: skip
        return len(rows)


def _blank(value: float | None) -> float | str:
    return "" if value is None else value
