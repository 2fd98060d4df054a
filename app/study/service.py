"""Reader studies, headless: creating a study and running blinded reading sessions on it.

This is the API the workstation's reader-study panel calls; nothing here needs a display.

Setting up (the coordinator, ``gmic study create`` and ``gmic study readers``)::

    service = StudyService(open_store(url))
    service.create_study("pilot", read_case_list("cases.csv"), Protocol.SEQUENTIAL, seed=7,
                         model_key=predictor.identity.key)
    service.enrol("pilot", "reader-03")                   # the roster: no one else may read

Reading (the panel, one reader)::

    session = service.open_session("pilot", "reader-03")   # starts or resumes
    while (task := session.current()) is not None:       # what to show now
        show(task.exam_key, task.source)                   # the exam; never its ground truth
        session.views_shown(task)                          # every view on screen: the clock starts
        if task.ai is not None:                            # the model's output may be shown
            show_ai(task.ai.scores, task.ai.hybrid_weight)
        estimates = ask_reader(task.breasts)               # {Laterality: Estimate}, fractions
        session.submit(task, estimates, model_shown=True)  # committed before it returns
        print(session.progress())                          # Progress(done=n, total=N)

The rules it enforces:

* **Roster.** Only readers the coordinator enrolled (:meth:`StudyService.enrol`) may read; reader
  ids match without regard to case and surrounding space, so a typo is refused, not a new reader. A
  reader or a reading may be excluded from the analysis with a recorded reason; nothing is deleted.
* **Order.** Each reader reads every case once per phase, in the order of their row of the study's
  balanced design (:mod:`app.study.design`, seeded by the study's seed), fixed at enrolment. A
  crossover reader's second session has an order of its own (:func:`second_session_order`), so that
  the first session's sequence gives no cue in the second.
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
* **The form.** Probability, BI-RADS and recall are all required unless the study says otherwise;
  contradicting answers need the reader's confirmation, which is recorded (:meth:`ReaderSession.submit`).
* **Reading time** runs from the moment every view of the case is on screen
  (:meth:`ReaderSession.views_shown`; a resumed session restarts the clock of the case that was open)
  to the submission, less the time paused (:meth:`ReaderSession.pause`, :meth:`ReaderSession.resume`).
* **Blinding between readers.** A session only ever reads its own reader's readings; ground truth
  is read by the analysis alone (``app.study.analysis``), never by this module. On PostgreSQL the
  database enforces it too (:mod:`app.store.roles`).
* **Blinding across the workstation.** :func:`exams_to_read_unaided` lists the exams a reader still
  has to read without the model, in every blinded or sequential study they read in;
  :class:`app.reading.session.ReadingSession` hides the model for them everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.reading.readings import (
    Estimate,
    InvalidReadingError,
    ModelShown,
    ensure_reader,
    estimate_of,
    find_reader,
    is_reader,
    reading_row,
)
from app.store.database import Store
from app.store.models import (
    Assignment,
    Enrolment,
    Exam,
    Exclusion,
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
from app.study.design import balanced_order
from gmic_core.errors import GMICError
from gmic_core.imaging.views import Laterality

Clock = Callable[[], datetime]

PHASES = {
    Protocol.BLINDED: (Phase.UNAIDED,),
    Protocol.SEQUENTIAL: (Phase.UNAIDED, Phase.AIDED),
    Protocol.AI_ASSISTED: (Phase.AIDED,),
    Protocol.CROSSOVER: (Phase.UNAIDED, Phase.AIDED),  # the aided-first arm reads them the other way
}
MAY_GO_BACK = {protocol: protocol is Protocol.AI_ASSISTED for protocol in Protocol}


class StudyError(GMICError):
    """A study that cannot be created or read as asked."""


class ProtocolError(StudyError):
    """An action the study's protocol does not allow (going back in a blinded read, ...)."""


class AlreadySubmittedError(StudyError):
    """A reading for this case and phase was already submitted; submitted readings are final."""


class StaleCaseError(StudyError):
    """A submission for a case or phase that is not the one to read now (another window moved on)."""


class NotEnrolledError(StudyError):
    """A reader id that is not on the study's roster (or was excluded from it)."""


class WashoutError(StudyError):
    """A crossover reader's second session, asked for before the washout has passed."""

    def __init__(self, message: str, opens_at: datetime) -> None:
        super().__init__(message)
        self.opens_at = opens_at


class ContradictionError(InvalidReadingError):
    """Answers that contradict each other, submitted without the reader's confirmation."""

    def __init__(self, message: str, contradictions: Sequence[str]) -> None:
        super().__init__(message)
        self.contradictions = tuple(contradictions)


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
    # In an aided phase, the reader's own unaided answers for the case, shown beside the model's.
    earlier: Mapping[Laterality, Estimate] = field(default_factory=dict)


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
    recall: bool | None
    ai_shown: bool
    model_score: float | None
    hybrid: float | None
    started_at: datetime
    submitted_at: datetime
    duration_s: float
    paused_s: float | None
    confirmed: str | None


@dataclass(frozen=True)
class Enrolled:
    """A reader on a study's roster: their id as registered, their row of the design, their arm."""

    reader: str
    position: int
    aided_first: bool


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
        washout_days: float | None = None,
        require_assessment: bool = True,
        confirm_submit: bool = True,
    ) -> None:
        """A new study over ``cases``. Protocols that show the model need ``model_key``; in a blinded
        study it is optional and makes the model a stand-alone reader of the report. Either way every
        case needs a stored result of that model (``app.store.results.save_exam_result``). A crossover
        study needs ``washout_days``. ``require_assessment``: BI-RADS and recall are required with the
        probability; ``confirm_submit``: the panel asks before each Submit."""
        protocol = Protocol(protocol)
        if not cases:
            raise StudyError("a study needs at least one case")
        if not 0.0 <= hybrid_weight <= 1.0:
            raise StudyError(f"the hybrid weight lambda must be in [0, 1], got {hybrid_weight}")
        if len({case.case_key for case in cases}) != len(cases):
            raise StudyError("the case list names an exam twice")
        if Phase.AIDED in PHASES[protocol] and not model_key:
            raise StudyError(f"the {protocol.value} protocol shows the model: give the model's key")
        if (protocol is Protocol.CROSSOVER) != (washout_days is not None):
            raise StudyError("a crossover study, and only a crossover study, needs the washout in days")
        if washout_days is not None and washout_days < 0:
            raise StudyError(f"the washout is a number of days >= 0, got {washout_days}")
        with self.store.session() as session:
            if session.scalar(select(Study.id).where(Study.name == name)) is not None:
                raise StudyError(f"a study named {name!r} exists already")
            if model_key:
                missing = [
                    case.case_key
                    for case in cases
                    if latest_model_run(session, case.case_key, model_key) is None
                ]
                if missing:
                    raise StudyError(
                        f"no stored result of the model {model_key} for {len(missing)} case(s), "
                        f"for example {missing[0]}: run the model on them first (gmic triage)"
                    )
            study = Study(
                name=name,
                protocol=protocol.value,
                seed=seed,
                model_key=model_key or None,
                hybrid_weight=hybrid_weight,
                washout_days=washout_days,
                require_assessment=require_assessment,
                confirm_submit=confirm_submit,
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

    def enrol(self, study: str, reader: str) -> Enrolled:
        """Put ``reader`` on the study's roster (the coordinator's act: a reader id not enrolled is
        refused a session) and fix their order: the next row of the study's balanced design
        (:mod:`app.study.design`); in a crossover study every second reader reads aided first. A
        reader already enrolled (up to case and surrounding space) is refused."""
        with self.store.session() as session:
            study_row = _study(session, study)
            reader_row = ensure_reader(session, reader)
            if _enrolment(session, study_row.id, reader_row.id) is not None:
                raise StudyError(f"reader {reader_row.name} is enrolled in study {study!r} already")
            position = session.scalar(
                select(func.count()).select_from(Enrolment).where(Enrolment.study_id == study_row.id)
            )
            enrolment = Enrolment(
                study_id=study_row.id,
                reader_id=reader_row.id,
                position=position,
                aided_first=Protocol(study_row.protocol) is Protocol.CROSSOVER and position % 2 == 1,
            )
            session.add(enrolment)
            case_ids = [case.id for case in study_row.cases]
            for place, index in enumerate(balanced_order(study_row.seed, position, len(case_ids))):
                session.add(
                    Assignment(
                        study_id=study_row.id,
                        reader_id=reader_row.id,
                        study_case_id=case_ids[index],
                        position=place,
                    )
                )
            return Enrolled(reader_row.name, position, enrolment.aided_first)

    def exclude_reader(self, study: str, reader: str, reason: str) -> None:
        """Leave ``reader`` out of the study's analysis from now on, for ``reason`` (recorded with the
        time). Their readings stay; the reader can no longer open a session."""
        with self.store.session() as session:
            study_row = _study(session, study)
            found = find_reader(session, reader)
            if found is None or _enrolment(session, study_row.id, found.id) is None:
                raise NotEnrolledError(f"reader {reader!r} is not enrolled in study {study!r}")
            session.add(Exclusion(study_id=study_row.id, reader_id=found.id, reason=_reason(reason)))

    def exclude_reading(self, study: str, reading_id: int, reason: str) -> None:
        """Leave one reading out of the study's analysis, for ``reason``; the case is then left out of
        a full report (every reader must have read every case) and the report says so."""
        with self.store.session() as session:
            study_row = _study(session, study)
            reading = session.get(Reading, reading_id)
            if reading is None or reading.study_id != study_row.id:
                raise StudyError(f"study {study!r} has no reading {reading_id} (the export lists their ids)")
            session.add(Exclusion(study_id=study_row.id, reading_id=reading_id, reason=_reason(reason)))

    def open_session(self, study: str, reader: str) -> ReaderSession:
        """Start or resume ``reader``'s session on ``study``: the reader must be enrolled and not
        excluded (ids match without regard to case and surrounding space)."""
        with self.store.session() as session:
            study_row = _study(session, study)
            reader_row = find_reader(session, reader)
            enrolment = None if reader_row is None else _enrolment(session, study_row.id, reader_row.id)
            if reader_row is None or enrolment is None:
                raise NotEnrolledError(
                    f"reader {reader.strip()!r} is not enrolled in study {study!r}: check the reader id, "
                    "or ask the study coordinator to enrol you (gmic study readers STUDY --add ID)"
                )
            excluded = session.scalar(
                select(Exclusion.reason).where(
                    Exclusion.study_id == study_row.id, Exclusion.reader_id == reader_row.id
                )
            )
            if excluded is not None:
                raise NotEnrolledError(
                    f"reader {reader_row.name} was excluded from study {study!r} ({excluded}): ask the "
                    "study coordinator"
                )
            return ReaderSession(self.store, study_row, reader_row, enrolment, self.clock)

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
            is_reader(reader),
            Study.protocol.in_([protocol.value for protocol in PHASES if Phase.UNAIDED in PHASES[protocol]]),
            ~read,
        )
    )
    return frozenset(rows)


def second_session_order(
    assignments: Sequence[Assignment], case_ids: Sequence[int], seed: int, position: int
) -> list[Assignment]:
    """A crossover reader's assignments (``assignments``, the first session's order) in the order of
    their second session: the design's second-session row for the reader enrolled ``position``-th,
    over the study's ``case_ids`` in the order the design numbers them (by id)."""
    by_case = {assignment.study_case_id: assignment for assignment in assignments}
    order = balanced_order(seed, position, len(case_ids), second_session=True)
    return [by_case[case_ids[index]] for index in order]


def _study(session: Session, name: str) -> Study:
    study = session.scalar(select(Study).where(Study.name == name))
    if study is None:
        raise StudyError(f"no study named {name!r}")
    return study


def _enrolment(session: Session, study_id: int, reader_id: int) -> Enrolment | None:
    return session.scalar(
        select(Enrolment).where(Enrolment.study_id == study_id, Enrolment.reader_id == reader_id)
    )


def _reason(reason: str) -> str:
    if not reason.strip():
        raise StudyError("give the reason for the exclusion: it is recorded with it")
    return reason.strip()


class ReaderSession:
    """One reader's reading session on one study (see the module docstring). Each call is its own
    short transaction, so a session may live as long as the panel is open."""

    def __init__(
        self, store: Store, study: Study, reader: Reader, enrolment: Enrolment, clock: Clock
    ) -> None:
        self._store = store
        self._study_id = study.id
        self.study = study.name
        self.reader = reader.name
        self._reader_id = reader.id
        self.protocol = Protocol(study.protocol)
        self._model_key = study.model_key
        self._hybrid_weight = study.hybrid_weight
        self.require_assessment = study.require_assessment
        self.confirm_submit = study.confirm_submit
        self._washout = None if study.washout_days is None else timedelta(days=study.washout_days)
        phases = PHASES[self.protocol]
        self.phases = phases[::-1] if enrolment.aided_first else phases  # in the order this reader reads them
        self._seed = study.seed
        self._position = enrolment.position
        self._clock = clock
        # The reading clock of each (assignment, phase): when every view was on screen, and the time
        # paused since. Kept here, not in the database, so that a reader's role never updates a row.
        self._opened: dict[tuple[int, Phase], datetime] = {}
        self._paused_s: dict[tuple[int, Phase], float] = {}
        self._paused_at: datetime | None = None
        self._running: tuple[int, Phase] | None = None  # the clock running (or paused) now
        self._revisit: int | None = None  # position being re-read (ai_assisted)

    def progress(self) -> Progress:
        with self._store.session() as session:
            total = session.scalar(
                select(func.count()).select_from(StudyCase).where(StudyCase.study_id == self._study_id)
            )
            return Progress(len(self._finished_cases(session)), total or 0)

    def current(self) -> CaseTask | None:
        """The case to read now (None when the reader has read them all). A crossover reader's second
        session raises :class:`WashoutError` until the washout has passed since their last reading of
        the first."""
        with self._store.session() as session:
            found = self._task(session)
            if found is None:
                return None
            assignment, phase = found
            return self._describe(session, assignment, phase)

    def views_shown(self, task: CaseTask) -> None:
        """Every view of ``task``'s case is on screen: its reading clock starts (image loading is not
        reading time). A resumed session restarts the clock of the case that was open."""
        self._running = self._clock_key(task)
        self._opened.setdefault(self._running, self._clock())

    def pause(self) -> None:
        """Stop the reading clock (the case stays in hand); :meth:`resume` starts it again."""
        if self._paused_at is None:
            self._paused_at = self._clock()

    def resume(self) -> None:
        if self._paused_at is None:
            return
        paused = (self._clock() - self._paused_at).total_seconds()
        self._paused_at = None
        if self._running is not None:
            self._paused_s[self._running] = self._paused_s.get(self._running, 0.0) + paused

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def _clock_key(self, task: CaseTask) -> tuple[int, Phase]:
        with self._store.session() as session:
            assignment = self._order(session, task.phase)[task.position]
        return assignment.id, task.phase

    def submit(
        self,
        task: CaseTask,
        estimates: Mapping[Laterality | str, Estimate],
        model_shown: bool,
        submission_key: str | None = None,
        confirmed: bool = False,
    ) -> list[SubmittedReading]:
        """Record the reader's estimates for ``task`` (the case and phase on screen), one per breast
        read, in one transaction committed before this returns. ``model_shown``: whether the study
        model's output was on screen. ``submission_key`` (default: a new UUID) makes a retried call a
        no-op that returns the readings already stored. A task that is no longer the case to read
        (submitted from another window) raises :class:`StaleCaseError`.

        Where the study requires it (the default), every answer (probability, BI-RADS, recall) must be
        given. Answers that contradict each other (:meth:`Estimate.contradictions`) raise
        :class:`ContradictionError` unless ``confirmed``; confirmed, they are recorded with the
        reading."""
        key = submission_key or str(uuid.uuid4())
        estimates = {Laterality(side): estimate for side, estimate in estimates.items()}
        for side, estimate in sorted(estimates.items()):
            missing = [
                name for name in estimate.missing() if self.require_assessment or name == "probability"
            ]
            if missing:
                raise InvalidReadingError(
                    f"case {task.case_key}, {side.name.lower()} breast: give your {' and '.join(missing)}"
                )
        contradictions = [
            f"{side.name.lower()} breast: {found}"
            for side, estimate in sorted(estimates.items())
            for found in estimate.contradictions()
        ]
        if contradictions and not confirmed:
            raise ContradictionError(
                f"case {task.case_key}: {'; '.join(contradictions)}. Check your answers, or confirm them",
                contradictions,
            )
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
                        f"{self._place(session, assignment, phase) + 1} ({phase.value}); it opens when you "
                        "carry on."
                    )
                shown = task.ai is not None and model_shown
                readings = self._new_readings(
                    session, assignment, phase, estimates, key, shown, "; ".join(contradictions) or None
                )
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
        self._running = self._paused_at = None
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
            self._opened.pop((earlier.id, self.phases[-1]), None)  # its clock starts again
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

    def _order(self, session: Session, phase: Phase) -> list[Assignment]:
        """This reader's assignments in the order they read ``phase``."""
        assignments = self._assignments(session)
        if self.protocol is not Protocol.CROSSOVER or phase is self.phases[0]:
            return assignments
        case_ids = list(
            session.scalars(
                select(StudyCase.id).where(StudyCase.study_id == self._study_id).order_by(StudyCase.id)
            )
        )
        return second_session_order(assignments, case_ids, self._seed, self._position)

    def _place(self, session: Session, assignment: Assignment, phase: Phase) -> int:
        """0-based place of ``assignment`` in this reader's order for ``phase``."""
        return [found.id for found in self._order(session, phase)].index(assignment.id)

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
        phases = set(self.phases)
        return [case_id for case_id, read in self._read_phases(session).items() if phases <= read]

    def _task(self, session: Session) -> tuple[Assignment, Phase] | None:
        assignments = self._assignments(session)
        if self._revisit is not None:
            return assignments[self._revisit], self.phases[-1]
        read = self._read_phases(session)
        if self.protocol is Protocol.CROSSOVER:  # two sessions: every case in one phase, then the other
            pairs = [
                (assignment, phase) for phase in self.phases for assignment in self._order(session, phase)
            ]
        else:
            pairs = [(assignment, phase) for assignment in assignments for phase in self.phases]
        for assignment, phase in pairs:
            if phase not in read.get(assignment.study_case_id, set()):
                if self.protocol is Protocol.CROSSOVER and phase is self.phases[1]:
                    self._check_washout(session)
                return assignment, phase
        return None

    def _check_washout(self, session: Session) -> None:
        assert self._washout is not None
        last = session.scalar(
            select(func.max(Reading.submitted_at)).where(
                Reading.study_id == self._study_id,
                Reading.reader_id == self._reader_id,
                Reading.phase == self.phases[0].value,
            )
        )
        opens_at = last + self._washout
        if self._clock() < opens_at:
            raise WashoutError(
                f"you have read every case of your first session ({self.phases[0].value}); the second "
                f"({self.phases[1].value}) opens after the washout, on {opens_at:%Y-%m-%d %H:%M} UTC",
                opens_at,
            )

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
            position=self._place(session, assignment, phase),
            total=len(self._assignments(session)),
            case_key=case.case_key,
            exam_key=case.exam.exam_key,
            source=case.exam.source,
            breasts=tuple(Laterality(side) for side in case.breasts),
            phase=phase,
            ai=self._ai(session, case.exam.exam_key, phase),
            may_go_back=MAY_GO_BACK[self.protocol],
            revisiting=self._revisit is not None,
            # A crossover's washout exists to make the reader forget the first session: nothing of it.
            earlier=self._unaided_answers(session, case.id) if self.protocol is Protocol.SEQUENTIAL else {},
        )

    def _unaided_answers(self, session: Session, study_case_id: int) -> dict[Laterality, Estimate]:
        rows = session.scalars(
            select(Reading)
            .where(
                Reading.study_id == self._study_id,
                Reading.reader_id == self._reader_id,
                Reading.study_case_id == study_case_id,
                Reading.phase == Phase.UNAIDED.value,
            )
            .order_by(Reading.revision)
        )
        return {Laterality(row.laterality): estimate_of(row) for row in rows}

    def _new_readings(
        self,
        session: Session,
        assignment: Assignment,
        phase: Phase,
        estimates: Mapping[Laterality, Estimate],
        key: str,
        model_shown: bool,
        confirmed: str | None,
    ) -> list[Reading]:
        case = assignment.study_case
        breasts = {Laterality(side) for side in case.breasts}
        if set(estimates) != breasts:
            wanted = " and ".join(sorted(side.value for side in breasts))
            raise InvalidReadingError(f"case {case.case_key}: give an estimate for breast(s) {wanted}")
        ai = self._ai(session, case.exam.exam_key, phase) if model_shown else None
        submitted = self._clock()
        clock = (assignment.id, phase)
        started = self._opened.get(clock, submitted)
        paused = self._paused_s.get(clock, 0.0)
        if self._paused_at is not None and self._running == clock:
            paused += (submitted - self._paused_at).total_seconds()
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
                paused_s=paused,
                confirmed=confirmed,
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
            paused_s=reading.paused_s,
            confirmed=reading.confirmed,
        )
