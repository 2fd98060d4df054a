"""The reader-study work of the workstation (the study panel), as plain functions for the workers of
:mod:`app.gui.workers`, like :mod:`app.gui.tasks` (Qt-free): listing the studies, opening a reader's
session, starting a case's reading clock, submitting a case and going back, each step answered with
where the session stands after it.

A :class:`~app.study.service.ReaderSession` keeps the reading clock of the cases it showed, so the
panel runs one of these at a time, on the window's pool of writes (:mod:`app.gui.persistence`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from app.gui.tasks import TaskContext
from app.reading.readings import Estimate
from app.store import StoreError
from app.study.service import CaseTask, ContradictionError, Progress, ReaderSession, StudyService
from gmic_core.errors import GMICError
from gmic_core.imaging import Laterality


@dataclass(frozen=True)
class StudyStep:
    """Where a reader's session stands: the case to read now (None: all read), the exams still to be
    read unaided, the progress, why the submission just made was refused (None: it was not), and the
    answers of that submission that contradict each other, not recorded until the reader confirms them
    (None: none did)."""

    session: ReaderSession
    task: CaseTask | None
    unaided: frozenset[str]
    progress: Progress
    refusal: str | None = None
    contradiction: str | None = None


@contextmanager
def _database() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as error:
        raise StoreError(f"The study could not be read or written: {error}") from error


def _step(
    service: StudyService,
    session: ReaderSession,
    refusal: str | None = None,
    contradiction: str | None = None,
) -> StudyStep:
    task = session.current()
    unaided = service.exams_to_read_unaided(session.reader)
    return StudyStep(session, task, unaided, session.progress(), refusal, contradiction)


def study_names(context: TaskContext, service: StudyService) -> list[str]:
    with _database():
        return service.study_names()


def open_study(context: TaskContext, service: StudyService, study: str, reader: str) -> StudyStep:
    """Open (or resume) ``reader``'s session on ``study``."""
    with _database():
        return _step(service, service.open_session(study, reader))


def views_shown(context: TaskContext, session: ReaderSession, task: CaseTask) -> None:
    """Every view of ``task``'s case is on screen: its reading clock starts."""
    with _database():
        session.views_shown(task)


def submit(
    context: TaskContext,
    service: StudyService,
    session: ReaderSession,
    task: CaseTask,
    estimates: Mapping[Laterality, Estimate],
    model_shown: bool,
    confirmed: bool,
) -> StudyStep:
    """Submit the reading of ``task``; a refused one (a stale case read in another window, a missing
    answer) comes back as the step's refusal, with the case to read now. Answers that contradict each
    other, not ``confirmed``, come back as the step's contradiction, nothing recorded: the panel asks
    the reader and submits again, confirmed (the confirmation is recorded with the reading)."""
    with _database():
        try:
            session.submit(task, estimates, model_shown=model_shown, confirmed=confirmed)
        except ContradictionError as contradiction:
            return _step(service, session, contradiction=str(contradiction))
        except (GMICError, SQLAlchemyError) as error:
            return _step(service, session, str(error))
        return _step(service, session)


def go_back(context: TaskContext, service: StudyService, session: ReaderSession) -> StudyStep:
    """Read the case before again (where the protocol allows it)."""
    with _database():
        session.go_back()
        return _step(service, session)
