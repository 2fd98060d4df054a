"""Reader studies, headless: creating a study and running blinded reading sessions on it.

This is the API the workstation's reader-study panel calls; nothing here needs a display.

Setting up (an administrator, ``gmic study create``)::

    service = StudyService(open_store(url))
    service.create_study("pilot", read_case_list("cases.csv"), Protocol.SEQUENTIAL, seed=7,
                         model_key=predictor.identity.key)

Reading (the panel, one reader)::

    session = service.open_session("pilot", "reader-03")   # starts or resumes
    while (task := session.current()) is not None:       # what to show now
        show(task.exam_key, task.source)                   # the exam; never its ground truth
        if task.ai is not None:                            # the model's output may be shown
            show_ai(task.ai.scores, task.ai.hybrid_weight)
        estimates = ask_reader(task.breasts)               # {Laterality: Estimate}, fractions
        session.submit(task, estimates, model_shown=True)  # committed before it returns
        print(session.progress())                          # Progress(done=n, total=N)

The rules it enforces:

* **Order.** Each reader reads every case once per phase, in an order drawn from the study's seed
  and the reader's name: reproducible, different between readers, fixed at the reader's first
  session.
* **Protocols** (:class:`~app.store.models.Protocol`). ``blinded``: the model's output is never
  shown (``task.ai`` is None). ``sequential``: each case is read blinded, then at once again with the
  model's output shown, logged as a second reading (phase ``aided``). ``ai_assisted``: shown from
  the start. The model's output is the malignancy probability per breast of the stored result of
  the study's ``model_key`` and the hybrid ``lambda * reader + (1 - lambda) * model``.
* **The case on screen.** :meth:`ReaderSession.submit` takes the :class:`CaseTask` the reader saw and
  refuses (:class:`StaleCaseError`) a submission for any case or phase other than the one to read
  now, so two windows of one reader never misfile. ``ai_shown`` records whether the model's output
  was on screen (``model_shown``), not only whether the protocol meant it.
* **Immutability.** :meth:`ReaderSession.submit` commits the reading before it returns; a
  submitted reading is never edited. Going back is allowed only in the ``ai_assisted`` protocol
  (:meth:`ReaderSession.go_back`), and re-reading a case there adds a reading that supersedes the
  earlier one. In ``blinded`` and ``sequential`` studies going back raises :class:`ProtocolError`:
  an unaided reading must stay what the reader said before seeing the model.
* **Resume.** Everything lives in the database: a new session for the same reader (after closing
  the application, or a crash) continues with the first case not yet read.
* **Reading time** runs from the moment :meth:`ReaderSession.current` first hands a case to this
  session (a resumed session restarts the clock of the case that was open) to the submission.
* **Blinding between readers.** A session only ever reads its own reader's readings; ground truth
  is read by the analysis alone (``app.study.analysis``), never by this module. On PostgreSQL the
  database enforces it too (:mod:`app.store.roles`).
* **Blinding across the workstation.** :func:`exams_to_read_unaided` lists the exams a reader still
  has to read without the model, in every blinded or sequential study they read in;
  :class:`app.reading.session.ReadingSession` hides the model for them everywhere.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.reading.readings import Estimate, InvalidReadingError, ModelShown, ensure_reader, reading_row
from app.store.database import Store
from app.store.models import (
    Assignment,
    Exam,
    GroundTruth,
    Phase,
    Protocol,
    Reader,
    Reading,
    Study,
    StudyCase,
    utc_now,
)
from app.store.results import ensure_exam, latest_model_run
from app.study.cases import CaseSpec
from gmic_core.errors import GMICError
from gmic_core.imaging.views import Laterality

Clock = Callable[[], datetime]

PHASES = {
    Protocol.BLINDED: (Phase.UNAIDED,),
    Protocol.SEQUENTIAL: (Phase.UNAIDED, Phase.AIDED),
    Protocol.AI_ASSISTED: (Phase.AIDED,),
}
MAY_GO_BACK = {Protocol.BLINDED: False, Protocol.SEQUENTIAL: False, Protocol.AI_ASSISTED: True}


class StudyError(GMICError):
    """A study that cannot be created or read as asked."""


class ProtocolError(StudyError):
    """An action the study's protocol does not allow (going back in a blinded read, ...)."""


class AlreadySubmittedError(StudyError):
    """A reading for this case and phase was already submitted; submitted readings are final."""


class StaleCaseError(StudyError):
    """A submission for a case or phase that is not the one to read now (another window moved on)."""


@dataclass(frozen=True)
class AIDisplay:
    """What may be shown of the model: its malignancy probability (0-1) per breast and lambda."""

    model_key: str
    scores: Mapping[Laterality, float]
    hybrid_weight: float

    def shown(self, side: Laterality) -> ModelShown:
        return ModelShown(self.scores[side], self.hybrid_weight)


@dataclass(frozen=True)
class CaseTask:
    """The case in front of the reader: everything the panel may show, nothing it may not."""

    study: str
    reader: str
    position: int  # 0-based place of the case in this reader's order
    total: int  # cases in the study
    case_key: str
    exam_key: str
    source: str | None
    breasts: tuple[Laterality, ...]
    phase: Phase
    ai: AIDisplay | None
    may_go_back: bool
    revisiting: bool  # re-reading an earlier case (ai_assisted only): the new reading supersedes


@dataclass(frozen=True)
class Progress:
    done: int  # cases with every phase read
    total: int


@dataclass(frozen=True)
class SubmittedReading:
    id: int
    case_key: str
    laterality: Laterality
    phase: Phase
    revision: int
    probability: float
    birads: int | None
    recall: bool
    ai_shown: bool
    model_score: float | None
    hybrid: float | None
    started_at: datetime
    submitted_at: datetime
    duration_s: float


class StudyService:
    """Creates studies and opens reading sessions on one store."""

    def __init__(self, store: Store, clock: Clock = utc_now) -> None:
        self.store = store
        self.clock = clock

    def create_study(
        self,
        name: str,
        cases: Sequence[CaseSpec],
        protocol: Protocol | str,
        seed: int,
        model_key: str | None = None,
        hybrid_weight: float = 0.5,
    ) -> None:
        """A new study over ``cases``. Protocols that show the model need ``model_key``, and a
        stored result of that model for every case (``app.store.results.save_exam_result``)."""
        protocol = Protocol(protocol)
        if not cases:
            raise StudyError("a study needs at least one case")
        if not 0.0 <= hybrid_weight <= 1.0:
            raise StudyError(f"the hybrid weight lambda must be in [0, 1], got {hybrid_weight}")
        if len({case.case_key for case in cases}) != len(cases):
            raise StudyError("the case list names an exam twice")
        shows_ai = Phase.AIDED in PHASES[protocol]
        if shows_ai and not model_key:
            raise StudyError(f"the {protocol.value} protocol shows the model: give the model's key")
        with self.store.session() as session:
            if session.scalar(select(Study.id).where(Study.name == name)) is not None:
                raise StudyError(f"a study named {name!r} exists already")
            if shows_ai:
                missing = [
                    case.case_key
                    for case in cases
                    if latest_model_run(session, case.case_key, model_key) is None
                ]
                if missing:
                    raise StudyError(
                        f"no stored result of the study's model for {len(missing)} case(s), "
                        f"for example {missing[0]}: run the model on them first"
                    )
            study = Study(
                name=name,
                protocol=protocol.value,
                seed=seed,
                model_key=model_key if shows_ai else None,
                hybrid_weight=hybrid_weight,
            )
            session.add(study)
            for case in cases:
                source = None if case.source is None else str(Path(case.source).resolve())
                exam = ensure_exam(session, case.case_key, source)
                study_case = StudyCase(
                    exam=exam, case_key=case.case_key, breasts="".join(side.value for side in case.breasts)
                )
                study.cases.append(study_case)
                session.flush()
                session.add_all(
                    GroundTruth(study_case_id=study_case.id, laterality=side.value, malignant=bool(malignant))
                    for side, malignant in case.truth.items()
                )

    def open_session(self, study: str, reader: str) -> ReaderSession:
        """Start or resume ``reader``'s session on ``study`` (the reader is registered if new)."""
        if not reader.strip():
            raise StudyError("choose a reader")
        try:
            return self._open_session(study, reader)
        except IntegrityError:  # another process registered the same reader at the same moment
            return self._open_session(study, reader)

    def _open_session(self, study: str, reader: str) -> ReaderSession:
        with self.store.session() as session:
            study_row = _study(session, study)
            reader_row = ensure_reader(session, reader)
            _assign(session, study_row, reader_row)
            return ReaderSession(self.store, study_row, reader_row, self.clock)

    def exams_to_read_unaided(self, reader: str) -> frozenset[str]:
        with self.store.session() as session:
            return exams_to_read_unaided(session, reader)

    def study_names(self) -> list[str]:
        with self.store.session() as session:
            return list(session.scalars(select(Study.name).order_by(Study.name)))


def exams_to_read_unaided(session: Session, reader: str) -> frozenset[str]:
    """The exam keys ``reader`` still has to read without the model, in every blinded or sequential
    study they read in: while one is listed, nothing of the model may be shown for it anywhere."""
    read = (
        select(Reading.id)
        .where(
            Reading.reader_id == Assignment.reader_id,
            Reading.study_case_id == StudyCase.id,
            Reading.phase == Phase.UNAIDED.value,
        )
        .exists()
    )
    rows = session.scalars(
        select(Exam.exam_key)
        .join(StudyCase, StudyCase.exam_id == Exam.id)
        .join(Assignment, Assignment.study_case_id == StudyCase.id)
        .join(Reader, Assignment.reader_id == Reader.id)
        .join(Study, StudyCase.study_id == Study.id)
        .where(
            Reader.name == reader,
            Study.protocol.in_([protocol.value for protocol in PHASES if Phase.UNAIDED in PHASES[protocol]]),
            ~read,
        )
    )
    return frozenset(rows)


def _study(session: Session, name: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        raise StudyError(f"no study named {name!r}")
    return study


def reading_order(seed: int, reader: str, cases: int) -> list[int]:
    """The reader's permutation of ``range(cases)``: the same seed and name give the same order."""
    reader_key = int.from_bytes(hashlib.sha256(reader.encode()).digest()[:8], "little")
    return [int(index) for index in np.random.default_rng([seed, reader_key]).permutation(cases)]


def _assign(session: Session, study: Study, reader: Reader) -> None:
    exists = session.scalar(
        select(Assignment.id)
        .where(Assignment.study_id == study.id, Assignment.reader_id == reader.id)
        .limit(1)
    )
    if exists is not None:
        return
    case_ids = list(
        session.scalars(select(StudyCase.id).where(StudyCase.study_id == study.id).order_by(StudyCase.id))
    )
    for position, index in enumerate(reading_order(study.seed, reader.name, len(case_ids))):
        session.add(
            Assignment(
                study_id=study.id, reader_id=reader.id, study_case_id=case_ids[index], position=position
            )
        )
    session.flush()


class ReaderSession:
    """One reader's reading session on one study (see the module docstring). Each call is its own
    short transaction, so a session may live as long as the panel is open."""

    def __init__(self, store: Store, study: Study, reader: Reader, clock: Clock) -> None:
        self._store = store
        self._study_id = study.id
        self.study = study.name
        self.reader = reader.name
        self._reader_id = reader.id
        self.protocol = Protocol(study.protocol)
        self._model_key = study.model_key
        self._hybrid_weight = study.hybrid_weight
        self._clock = clock
        # When this session first showed each (assignment, phase): the reading clock. Kept here, not
        # in the database, so that a reader's role never updates a row.
        self._opened: dict[tuple[int, Phase], datetime] = {}
        self._revisit: int | None = None  # position being re-read (ai_assisted)

    def progress(self) -> Progress:
        with self._store.session() as session:
            total = session.scalar(
                select(func.count()).select_from(StudyCase).where(StudyCase.study_id == self._study_id)
            )
            return Progress(len(self._finished_cases(session)), total or 0)

    def current(self) -> CaseTask | None:
        """The case to read now (None when the reader has read them all); starts its clock."""
        with self._store.session() as session:
            found = self._task(session)
            if found is None:
                return None
            assignment, phase = found
            self._opened.setdefault((assignment.id, phase), self._clock())
            return self._describe(session, assignment, phase)

    def submit(
        self,
        task: CaseTask,
        estimates: Mapping[Laterality | str, Estimate],
        model_shown: bool,
        submission_key: str | None = None,
    ) -> list[SubmittedReading]:
        """Record the reader's estimates for ``task`` (the case and phase on screen), one per breast
        read, in one transaction committed before this returns. ``model_shown``: whether the study
        model's output was on screen. ``submission_key`` (default: a new UUID) makes a retried call a
        no-op that returns the readings already stored. A task that is no longer the case to read
        (submitted from another window) raises :class:`StaleCaseError`."""
        key = submission_key or str(uuid.uuid4())
        estimates = {Laterality(side): estimate for side, estimate in estimates.items()}
        try:
            with self._store.session() as session:
                stored = self._readings_of_submission(session, key)
                if stored:
                    return stored
                found = self._task(session)
                if found is None:
                    raise AlreadySubmittedError("every case of this study has been read")
                assignment, phase = found
                if (assignment.study_case.case_key, phase) != (task.case_key, task.phase):
                    raise StaleCaseError(
                        f"case {task.case_key} ({task.phase.value}) was already read, from another window "
                        f"or workstation: nothing was recorded. The case to read now is case "
                        f"{assignment.position + 1} ({phase.value}); it opens when you carry on."
                    )
                shown = task.ai is not None and model_shown
                readings = self._new_readings(session, assignment, phase, estimates, key, shown)
                session.add_all(readings)
                session.flush()
                result = [self._summary(reading, assignment.study_case.case_key) for reading in readings]
        except IntegrityError as error:
            with self._store.session() as session:
                stored = self._readings_of_submission(session, key)
            if stored:
                return stored
            raise AlreadySubmittedError(
                "this case was submitted from another window or workstation at the same moment"
            ) from error
        self._revisit = None
        return result

    def go_back(self) -> CaseTask:
        """Re-read the case before the one in front of the reader (``ai_assisted`` studies only)."""
        if not MAY_GO_BACK[self.protocol]:
            raise ProtocolError(f"a {self.protocol.value} read does not allow going back to an earlier case")
        with self._store.session() as session:
            found = self._task(session)
            position = found[0].position if found is not None else self._last_position(session) + 1
            if position == 0:
                raise ProtocolError("this is the first case: there is no earlier one")
            self._revisit = position - 1
            earlier = self._assignments(session)[self._revisit]
            self._opened.pop((earlier.id, PHASES[self.protocol][-1]), None)  # its clock starts again
        task = self.current()
        assert task is not None
        return task

    def my_readings(self) -> list[SubmittedReading]:
        """This reader's own readings in this study (latest revision of each), in reading order."""
        with self._store.session() as session:
            rows = session.execute(
                select(Reading, StudyCase.case_key)
                .join(StudyCase, Reading.study_case_id == StudyCase.id)
                .where(Reading.study_id == self._study_id, Reading.reader_id == self._reader_id)
                .order_by(Reading.id)
            ).all()
        latest: dict[tuple[str, str, str], SubmittedReading] = {}
        for reading, case_key in rows:
            latest[(case_key, reading.laterality, reading.phase)] = self._summary(reading, case_key)
        return sorted(latest.values(), key=lambda reading: reading.id)

    # --- internals ---------------------------------------------------------------------------------

    def _assignments(self, session: Session) -> list[Assignment]:
        return list(
            session.scalars(
                select(Assignment)
                .where(Assignment.study_id == self._study_id, Assignment.reader_id == self._reader_id)
                .order_by(Assignment.position)
            )
        )

    def _read_phases(self, session: Session) -> dict[int, set[Phase]]:
        """Per study case, the phases this reader has read."""
        read: dict[int, set[Phase]] = {}
        for case_id, phase in session.execute(
            select(Reading.study_case_id, Reading.phase)
            .where(Reading.study_id == self._study_id, Reading.reader_id == self._reader_id)
            .distinct()
        ):
            read.setdefault(case_id, set()).add(Phase(phase))
        return read

    def _finished_cases(self, session: Session) -> list[int]:
        phases = set(PHASES[self.protocol])
        return [case_id for case_id, read in self._read_phases(session).items() if phases <= read]

    def _task(self, session: Session) -> tuple[Assignment, Phase] | None:
        assignments = self._assignments(session)
        if self._revisit is not None:
            return assignments[self._revisit], PHASES[self.protocol][-1]
        read = self._read_phases(session)
        for assignment in assignments:
            for phase in PHASES[self.protocol]:
                if phase not in read.get(assignment.study_case_id, set()):
                    return assignment, phase
        return None

    def _last_position(self, session: Session) -> int:
        return len(self._assignments(session)) - 1

    def _ai(self, session: Session, exam_key: str, phase: Phase) -> AIDisplay | None:
        if phase is not Phase.AIDED:
            return None
        assert self._model_key is not None
        run = latest_model_run(session, exam_key, self._model_key)
        if run is None:
            raise StudyError(f"the study's model result for case {exam_key} is no longer stored")
        scores = {Laterality(breast.laterality): breast.malignant for breast in run.breasts}
        return AIDisplay(self._model_key, scores, self._hybrid_weight)

    def _describe(self, session: Session, assignment: Assignment, phase: Phase) -> CaseTask:
        case = assignment.study_case
        return CaseTask(
            study=self.study,
            reader=self.reader,
            position=assignment.position,
            total=len(self._assignments(session)),
            case_key=case.case_key,
            exam_key=case.exam.exam_key,
            source=case.exam.source,
            breasts=tuple(Laterality(side) for side in case.breasts),
            phase=phase,
            ai=self._ai(session, case.exam.exam_key, phase),
            may_go_back=MAY_GO_BACK[self.protocol],
            revisiting=self._revisit is not None,
        )

    def _new_readings(
        self,
        session: Session,
        assignment: Assignment,
        phase: Phase,
        estimates: Mapping[Laterality, Estimate],
        key: str,
        model_shown: bool,
    ) -> list[Reading]:
        case = assignment.study_case
        breasts = {Laterality(side) for side in case.breasts}
        if set(estimates) != breasts:
            wanted = " and ".join(sorted(side.value for side in breasts))
            raise InvalidReadingError(f"case {case.case_key}: give an estimate for breast(s) {wanted}")
        ai = self._ai(session, case.exam.exam_key, phase) if model_shown else None
        submitted = self._clock()
        started = self._opened.get((assignment.id, phase), submitted)
        previous = {
            reading.laterality: reading
            for reading in session.scalars(
                select(Reading)
                .where(
                    Reading.study_id == self._study_id,
                    Reading.reader_id == self._reader_id,
                    Reading.study_case_id == case.id,
                    Reading.phase == phase.value,
                )
                .order_by(Reading.revision)
            )
        }
        if previous and self._revisit is None:
            raise AlreadySubmittedError(f"case {case.case_key} was already read ({phase.value})")
        return [
            reading_row(
                submission_key=key,
                reader_id=self._reader_id,
                exam_id=case.exam_id,
                side=side,
                estimate=estimates[side],
                phase=phase,
                model=None if ai is None else ai.shown(side),
                previous=previous.get(side.value),
                started_at=started,
                submitted_at=submitted,
                study_id=self._study_id,
                study_case_id=case.id,
            )
            for side in sorted(breasts, key=lambda side: side.value)
        ]

    def _readings_of_submission(self, session: Session, key: str) -> list[SubmittedReading]:
        rows = session.execute(
            select(Reading, StudyCase.case_key)
            .join(StudyCase, Reading.study_case_id == StudyCase.id)
            .where(Reading.submission_key == key, Reading.reader_id == self._reader_id)
            .order_by(Reading.laterality)
        ).all()
        return [self._summary(reading, case_key) for reading, case_key in rows]

    @staticmethod
    def _summary(reading: Reading, case_key: str) -> SubmittedReading:
        return SubmittedReading(
            id=reading.id,
            case_key=case_key,
            laterality=Laterality(reading.laterality),
            phase=Phase(reading.phase),
            revision=reading.revision,
            probability=reading.probability,
            birads=reading.birads,
            recall=reading.recall,
            ai_shown=reading.ai_shown,
            model_score=reading.model_score,
            hybrid=reading.hybrid,
            started_at=reading.started_at,
            submitted_at=reading.submitted_at,
            duration_s=reading.duration_s,
        )
