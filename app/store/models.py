"""The database's tables as SQLAlchemy 2 typed models.

Three groups:

* **Exams and model results**: :class:`Exam`, :class:`Image`, :class:`ModelRun` (one model identity
  run on one exam: checkpoint hashes, device, precision, timings), :class:`ViewPrediction`,
  :class:`BreastPrediction` and :class:`SaliencyMap` (zlib-compressed float32 arrays).
  ``app.store.results`` stores and fetches a whole ``ExamResult`` through them.
* **Reader studies**: :class:`Reader`, :class:`Study` (protocol, seed, the model shown),
  :class:`StudyCase` (the exams read), :class:`GroundTruth` (kept in its own table, read only by the
  analysis), :class:`Enrolment` (the study's roster), :class:`Assignment` (a reader's order),
  :class:`Reading`, :class:`Exclusion` (a reader or reading left out of the analysis, with why).
* **Triage**: :class:`TriageRun` (one ``gmic triage`` run: model, paths, counts),
  :class:`TriageFailure` (an exam or a file that could not be scored, with the reason; one row per
  exam or file, replaced when it fails again, removed once it is scored), :class:`OperatingPoint`
  (a threshold chosen on a calibration set, stored with the model identity it belongs to) and
  :class:`ScoreCalibration` (a site's calibration of a model's malignancy scores and the deciles of
  its exam scores).
* A :class:`Reading` is immutable: the ORM refuses to update or delete one, and the database refuses
  too (triggers created by the migration). A reading that replaces an earlier one (where the
  protocol allows going back) is a new row pointing at the one it supersedes.

Closed vocabularies (laterality, view, phase, protocol, triage status and failure stage) are Python enums stored as their values in
plain strings with a CHECK constraint (:func:`vocabulary`), not as native PostgreSQL enum types: the
same schema on both dialects, a value added later is one constraint changed, not an ``ALTER TYPE``, and
the column types stay those the row-level security policies were written against. The members are
``StrEnum`` members, so comparisons with the plain values keep working.

Times are timezone-aware UTC. Nothing here holds patient identifiers: exams are known by the key the
imaging layer gives them (the StudyInstanceUID or the manifest's exam id).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy import Enum as SQLEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.defaults import FailureStage, RunStatus
from gmic_core.imaging.views import Laterality, View

# Deterministic constraint names, so that migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps naive values: they are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def vocabulary(members: type[StrEnum], name: str, length: int) -> SQLEnum:
    """A column type for ``members``: their values in a ``VARCHAR(length)`` with the CHECK constraint
    ``ck_<table>_<name>``; reads give back the enum members."""
    return SQLEnum(
        members,
        name=name,
        length=length,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        values_callable=lambda enum: [member.value for member in enum],
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Protocol(StrEnum):
    """How a study shows the model's output (DESIGN.md, reader studies)."""

    BLINDED = "blinded"  # AI hidden
    SEQUENTIAL = "sequential"  # each case read blinded, then again with AI shown: two readings
    AI_ASSISTED = "ai_assisted"  # AI shown from the start
    CROSSOVER = "crossover"  # every case read in two sessions, unaided and aided, a washout apart


class Phase(StrEnum):
    """Which reading of a case a reading is: without or with the model's output."""

    UNAIDED = "unaided"
    AIDED = "aided"


# --- exams and model results ------------------------------------------------------------------------


class Exam(Base):
    __tablename__ = "exams"

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_key: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str | None] = mapped_column(String(2000))  # folder or manifest it was read from
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    images: Mapped[list[Image]] = relationship(back_populates="exam", cascade="all, delete-orphan")
    model_runs: Mapped[list[ModelRun]] = relationship(back_populates="exam", cascade="all, delete-orphan")


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("exam_id", "path", name="uq_images_path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), index=True)
    view: Mapped[View | None] = mapped_column(vocabulary(View, "view", 8))  # None for extra images
    path: Mapped[str] = mapped_column(String(2000))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64))
    rows: Mapped[int | None]
    columns: Mapped[int | None]

    exam: Mapped[Exam] = relationship(back_populates="images")


class ModelRun(Base):
    """One model identity (``gmic_core.inference.ModelIdentity``) run on one exam."""

    __tablename__ = "model_runs"
    # One stored run per exam and model: a triage run, a retried cluster task or a second workstation
    # can never score an exam twice.
    __table_args__ = (UniqueConstraint("exam_id", "model_key", name="uq_model_runs_model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), index=True)
    model_key: Mapped[str] = mapped_column(String(2000), index=True)  # ModelIdentity.key
    model_names: Mapped[list[Any]]
    checkpoint_sha256: Mapped[list[Any]]
    top_t: Mapped[list[Any]]
    device: Mapped[str] = mapped_column(String(200))
    precision: Mapped[str] = mapped_column(String(8))
    tta: Mapped[int]
    timings: Mapped[dict[str, Any]]  # seconds per stage, as the Predictor measured them
    result_exam_id: Mapped[str] = mapped_column(String(200))  # ExamResult.exam_id
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    exam: Mapped[Exam] = relationship(back_populates="model_runs")
    views: Mapped[list[ViewPrediction]] = relationship(
        back_populates="model_run", cascade="all, delete-orphan"
    )
    breasts: Mapped[list[BreastPrediction]] = relationship(
        back_populates="model_run", cascade="all, delete-orphan"
    )


class ViewPrediction(Base):
    __tablename__ = "view_predictions"
    __table_args__ = (UniqueConstraint("model_run_id", "view", name="uq_view_predictions_view"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"), index=True)
    view: Mapped[View] = mapped_column(vocabulary(View, "view", 8))
    benign: Mapped[float]
    malignant: Mapped[float]
    y_global: Mapped[list[Any]]
    y_local: Mapped[list[Any]]
    y_fusion: Mapped[list[Any]]
    attention: Mapped[list[Any]]
    patch_locations: Mapped[list[Any]]  # model frame
    roi_boxes: Mapped[list[Any]]  # stored frame
    roi_member: Mapped[list[Any]]
    geometry: Mapped[dict[str, Any]]

    model_run: Mapped[ModelRun] = relationship(back_populates="views")
    saliency: Mapped[SaliencyMap] = relationship(
        back_populates="view_prediction", cascade="all, delete-orphan"
    )


class BreastPrediction(Base):
    __tablename__ = "breast_predictions"
    __table_args__ = (
        UniqueConstraint("model_run_id", "laterality", name="uq_breast_predictions_laterality"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"), index=True)
    laterality: Mapped[Laterality] = mapped_column(vocabulary(Laterality, "laterality", 1))
    benign: Mapped[float]
    malignant: Mapped[float]
    views: Mapped[list[Any]]
    missing_views: Mapped[list[Any]]

    model_run: Mapped[ModelRun] = relationship(back_populates="breasts")


class SaliencyMap(Base):
    """Benign and malignant saliency of one view on the model-frame grid, ``[2, h, w]`` float32,
    zlib-compressed little-endian bytes."""

    __tablename__ = "saliency_maps"

    id: Mapped[int] = mapped_column(primary_key=True)
    view_prediction_id: Mapped[int] = mapped_column(
        ForeignKey("view_predictions.id", ondelete="CASCADE"), unique=True
    )
    shape: Mapped[list[Any]]
    dtype: Mapped[str] = mapped_column(String(16))
    data: Mapped[bytes] = mapped_column(LargeBinary)

    view_prediction: Mapped[ViewPrediction] = relationship(back_populates="saliency")


# --- triage ------------------------------------------------------------------------------------------


class TriageRun(Base):
    """One batch run of ``gmic triage``."""

    __tablename__ = "triage_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_key: Mapped[str] = mapped_column(String(2000), index=True)  # ModelIdentity.key
    model_names: Mapped[list[Any]]
    device: Mapped[str] = mapped_column(String(200))
    paths: Mapped[list[Any]]
    status: Mapped[RunStatus] = mapped_column(vocabulary(RunStatus, "status", 16))
    scored: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    finished_at: Mapped[datetime | None]


class TriageFailure(Base):
    """An exam (``exam_id``) or a file that belongs to no exam (``path``) that triage could not score,
    and where it failed (``stage``)."""

    __tablename__ = "triage_failures"
    __table_args__ = (CheckConstraint("(exam_id IS NULL) <> (path IS NULL)", name="subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[int | None] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"), unique=True)
    path: Mapped[str | None] = mapped_column(String(2000), unique=True)
    stage: Mapped[FailureStage] = mapped_column(vocabulary(FailureStage, "stage", 16))
    error: Mapped[str] = mapped_column(String(4000))
    triage_run_id: Mapped[int | None] = mapped_column(ForeignKey("triage_runs.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime] = mapped_column(default=utc_now)

    exam: Mapped[Exam | None] = relationship()


class OperatingPoint(Base):
    """A raw-score threshold of one model identity, chosen on a labelled calibration set for a target
    sensitivity, specificity or fraction of exams flagged (``metric`` and ``target``);
    ``sensitivity`` and ``specificity`` are what it reached there, ``flagged_fraction`` the fraction of
    the set's exams scoring at least ``threshold`` (None for points stored before revision 0003). An
    exam scoring at least ``threshold`` is called positive."""

    __tablename__ = "operating_points"
    __table_args__ = (
        UniqueConstraint("model_key", "name", name="uq_operating_points_name"),
        CheckConstraint("metric IN ('sensitivity', 'specificity', 'flag_fraction')", name="metric"),
        CheckConstraint("target > 0 AND target <= 1", name="target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_key: Mapped[str] = mapped_column(String(2000), index=True)  # ModelIdentity.key
    name: Mapped[str] = mapped_column(String(32))  # high_suspicion, likely_normal or flag_top
    metric: Mapped[str] = mapped_column(String(16))
    target: Mapped[float]
    threshold: Mapped[float]
    sensitivity: Mapped[float]
    specificity: Mapped[float]
    flagged_fraction: Mapped[float | None]
    calibration_set: Mapped[str] = mapped_column(String(2000))
    exams: Mapped[int]
    positives: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class ScoreCalibration(Base):
    """A site's calibration of one model identity, fitted on a labelled calibration set:
    ``calibration`` is a ``gmic_core.calibration.SiteCalibration`` as JSON (the exam and breast
    calibrators with their held-out evidence, and the decile edges of the raw exam scores). One per
    model: calibrating again replaces it. Calibrated probabilities and deciles are computed from it and
    the stored raw scores when shown, never stored per exam."""

    __tablename__ = "score_calibrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_key: Mapped[str] = mapped_column(String(2000), unique=True)  # ModelIdentity.key
    calibration: Mapped[dict[str, Any]]
    calibration_set: Mapped[str] = mapped_column(String(2000))
    exams: Mapped[int]
    positives: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


# --- reader studies -----------------------------------------------------------------------------------


class Reader(Base):
    __tablename__ = "readers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)  # a reader's chosen id, not a patient's
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (CheckConstraint("hybrid_weight >= 0 AND hybrid_weight <= 1", name="hybrid_weight"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    protocol: Mapped[Protocol] = mapped_column(vocabulary(Protocol, "protocol", 16))
    seed: Mapped[int]
    model_key: Mapped[str | None] = mapped_column(String(2000))  # whose predictions AI shows
    hybrid_weight: Mapped[float] = mapped_column(Float, default=0.5)  # lambda of the hybrid shown
    washout_days: Mapped[float | None]  # crossover: days between a reader's two sessions
    require_assessment: Mapped[bool] = mapped_column(Boolean, default=True)  # BI-RADS and recall required
    confirm_submit: Mapped[bool] = mapped_column(Boolean, default=True)  # the panel asks before Submit
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    cases: Mapped[list[StudyCase]] = relationship(
        back_populates="study", cascade="all, delete-orphan", order_by="StudyCase.id"
    )


class StudyCase(Base):
    """One exam of a study, as readers see it: no ground truth here."""

    __tablename__ = "study_cases"
    __table_args__ = (
        UniqueConstraint("study_id", "case_key", name="uq_study_cases_case_key"),
        CheckConstraint("breasts IN ('LR', 'L', 'R')", name="breasts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    case_key: Mapped[str] = mapped_column(String(200))
    breasts: Mapped[str] = mapped_column(String(2))  # the breasts read: "LR", "L" or "R"

    study: Mapped[Study] = relationship(back_populates="cases")
    exam: Mapped[Exam] = relationship()


class GroundTruth(Base):
    """Biopsy-proven malignancy of one breast of a study case, for the analysis only."""

    __tablename__ = "ground_truth"
    __table_args__ = (UniqueConstraint("study_case_id", "laterality", name="uq_ground_truth_laterality"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_case_id: Mapped[int] = mapped_column(ForeignKey("study_cases.id", ondelete="CASCADE"), index=True)
    laterality: Mapped[Laterality] = mapped_column(vocabulary(Laterality, "laterality", 1))
    malignant: Mapped[bool] = mapped_column(Boolean)


class Enrolment(Base):
    """``reader`` is enrolled in ``study`` by the coordinator, ``position``-th (0-based): the row of the
    study's balanced design the reader reads, and in a crossover study the arm (``aided_first``)."""

    __tablename__ = "study_readers"
    __table_args__ = (
        UniqueConstraint("study_id", "reader_id", name="uq_study_readers_reader"),
        UniqueConstraint("study_id", "position", name="uq_study_readers_position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    position: Mapped[int]
    aided_first: Mapped[bool] = mapped_column(Boolean, default=False)
    enrolled_at: Mapped[datetime] = mapped_column(default=utc_now)

    reader: Mapped[Reader] = relationship()


class Exclusion(Base):
    """A reader, or one reading, left out of a study's analysis by the coordinator, with the reason and
    time. Nothing is deleted: the readings stay, and the export shows them with the exclusion."""

    __tablename__ = "study_exclusions"
    __table_args__ = (CheckConstraint("reader_id IS NOT NULL OR reading_id IS NOT NULL", name="what"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int | None] = mapped_column(ForeignKey("readers.id"))
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("readings.id"))
    reason: Mapped[str] = mapped_column(String(2000))
    excluded_at: Mapped[datetime] = mapped_column(default=utc_now)


class Assignment(Base):
    """Position ``position`` (0-based) of ``reader``'s randomised order in ``study``. Written once,
    never updated (a reader's database role may only insert it)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("study_id", "reader_id", "position", name="uq_assignments_position"),
        UniqueConstraint("study_id", "reader_id", "study_case_id", name="uq_assignments_case"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    study_case_id: Mapped[int] = mapped_column(ForeignKey("study_cases.id", ondelete="CASCADE"))
    position: Mapped[int]

    study_case: Mapped[StudyCase] = relationship()


class Reading(Base):
    """One reader's estimate for one breast. Immutable once inserted.

    ``probability`` is the reader's probability of malignancy in percent (0-100), ``birads`` the
    BI-RADS assessment (0-6), ``recall`` the recall decision; either is None when the reader gave
    none (unknown, never "no"). When the model's output was shown,
    ``model_score`` is the malignancy probability shown (0-1), ``hybrid_weight`` lambda and
    ``hybrid`` ``lambda * probability / 100 + (1 - lambda) * model_score``. ``revision`` counts
    readings of the same (study, reader, case, breast, phase), or for a workstation reading (no study)
    of the same (reader, exam, breast): 0 for the first, and each later one ``supersedes`` the
    previous.
    """

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint(
            "study_id",
            "reader_id",
            "study_case_id",
            "laterality",
            "phase",
            "revision",
            name="uq_readings_revision",
        ),
        UniqueConstraint("submission_key", "laterality", name="uq_readings_submission"),
        # Workstation readings (no study): one row per revision, whichever workstation writes it.
        Index(
            "uq_readings_workstation_revision",
            "reader_id",
            "exam_id",
            "laterality",
            "revision",
            unique=True,
            sqlite_where=text("study_id IS NULL"),
            postgresql_where=text("study_id IS NULL"),
        ),
        CheckConstraint("probability >= 0 AND probability <= 100", name="probability"),
        CheckConstraint("birads IS NULL OR (birads >= 0 AND birads <= 6)", name="birads"),
        CheckConstraint("submitted_at >= started_at", name="times"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_key: Mapped[str] = mapped_column(String(64))  # one per submit: a retried submit is a no-op
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    exam_id: Mapped[int] = mapped_column(ForeignKey("exams.id"), index=True)
    study_case_id: Mapped[int | None] = mapped_column(ForeignKey("study_cases.id"))
    laterality: Mapped[Laterality] = mapped_column(vocabulary(Laterality, "laterality", 1))
    phase: Mapped[Phase] = mapped_column(vocabulary(Phase, "phase", 8))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("readings.id"))
    probability: Mapped[float]
    birads: Mapped[int | None]
    recall: Mapped[bool | None]  # None: not answered (a workstation reading; studies may require it)
    ai_shown: Mapped[bool]
    model_score: Mapped[float | None]
    hybrid_weight: Mapped[float | None]
    hybrid: Mapped[float | None]
    started_at: Mapped[datetime]
    submitted_at: Mapped[datetime]
    duration_s: Mapped[float]  # reading time: from every view on screen to submission, pauses excluded
    paused_s: Mapped[float | None]  # time paused within it (None: recorded before migration 0005)
    confirmed: Mapped[str | None] = mapped_column(String(2000))  # contradictions the reader confirmed


class ImmutableReadingError(RuntimeError):
    """Raised when code tries to change or delete a submitted reading."""


@event.listens_for(Reading, "before_update")
def _refuse_update(mapper, connection, target: Reading) -> None:
    raise ImmutableReadingError(f"reading {target.id} was submitted and cannot be edited")


@event.listens_for(Reading, "before_delete")
def _refuse_delete(mapper, connection, target: Reading) -> None:
    raise ImmutableReadingError(f"reading {target.id} was submitted and cannot be deleted")
