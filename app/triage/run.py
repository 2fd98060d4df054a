"""A triage run: find the exams under some paths, score those the model has not scored yet, and store
each result, or the reason it failed, the moment it is known."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.defaults import DEFAULT_OVERLAP, DEFAULT_WORKERS, FailureStage, Overlap, RunStatus
from app.store import Store
from app.store.models import Exam as ExamRow
from app.store.models import ModelRun, TriageFailure, TriageRun, utc_now
from app.store.results import ensure_exam, save_exam_result
from app.triage.operating_points import SiteSettings, site_settings
from app.triage.pipeline import Failure, exam_job, score_jobs
from gmic_core.errors import GMICError
from gmic_core.imaging import Exam, ImageRef
from gmic_core.imaging import find_exams as find_exams_at
from gmic_core.imaging.layouts import read_layout
from gmic_core.inference import ExamResult, Predictor, load_standard_views
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.identity import Algorithm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriageProgress:
    """Where a run stands: ``done`` of ``total`` exams to score (exams already scored by the model are
    not counted), seconds since scoring began, the rate and the estimated seconds left (None before
    the first exam)."""

    done: int
    total: int
    scored: int
    failed: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        """Exams per second."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        return (self.total - self.done) / self.rate if self.done else None


@dataclass
class TriageSummary:
    """What a run did. ``failed`` holds (exam key or path, stage, reason) for this run's failures,
    ``ignored`` the files that are not DICOM at all; ``timings`` the seconds per scored or failed exam
    (``read_s``, ``preprocess_s``, ``inference_s``, ``wait_s``), in order."""

    run_id: int
    model_key: str
    exams_found: int = 0
    scored: int = 0
    skipped: int = 0
    failed: list[Failure] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    cancelled: bool = False
    elapsed_s: float = 0.0
    timings: list[dict[str, float]] = field(default_factory=list)


@dataclass
class FoundExams:
    """What :func:`find_exams` found: the exams, the paths that failed and the images kept but not
    scored (stage "scan"), the files that are not DICOM, and the scanned roots."""

    exams: list[Exam] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    ignored: list[Path] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)


def find_exams(paths: Iterable[Path | str]) -> FoundExams:
    """Every exam at ``paths`` (:func:`gmic_core.imaging.find_exams` of the resolved paths); what
    could not be used, and what is kept but never scored, as scan failures."""
    roots = [Path(path).resolve() for path in paths]
    scan = find_exams_at(roots)
    failures = [
        Failure(str(file), FailureStage.SCAN, message) for file, message in (*scan.failures, *scan.not_scored)
    ]
    return FoundExams(scan.exams, failures, scan.skipped, roots)


def find_layout_exams(layout: str, paths: Iterable[Path | str]) -> FoundExams:
    """The exams of public-dataset trees (:func:`gmic_core.imaging.layouts.read_layout`), grouped by
    the dataset's rules; the files each layout left out, as scan failures."""
    found = FoundExams()
    for path in (Path(path).resolve() for path in paths):
        found.roots.append(path)
        try:
            dataset = read_layout(layout, path)
        except GMICError as error:
            found.failures.append(Failure(str(path), FailureStage.SCAN, str(error)))
            continue
        found.failures.extend(
            Failure(str(file), FailureStage.SCAN, message) for file, message in dataset.left_out
        )
        found.exams.extend(layout_exam.exam for layout_exam in dataset.exams)
    return found


def run_triage(
    store: Store,
    predictor: Predictor,
    paths: Sequence[Path | str],
    overlap: Overlap = DEFAULT_OVERLAP,
    workers: int = DEFAULT_WORKERS,
    progress: Callable[[TriageProgress], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    layout: str | None = None,
    dicom_out: Path | None = None,
    ray_address: str | None = None,
) -> TriageSummary:
    """Score every exam under ``paths`` that ``predictor``'s model has not scored yet and store the
    results; see the package docstring. With ``layout``, each path is read as that public dataset's
    tree (:func:`find_layout_exams`). ``dicom_out``: write each scored exam's results there as DICOM
    objects; an exam that cannot be exported stays scored and gets a failure of stage "export".
    ``ray_address``: read, preprocess and run the exams on that Ray cluster
    (:mod:`app.triage.cluster`; ``overlap`` and ``workers`` then do not apply); this process still
    scans, stores and reports progress."""
    algorithm = Algorithm.of(predictor.checkpoints)
    started = time.perf_counter()
    model_key = predictor.identity.key
    found = find_exams(paths) if layout is None else find_layout_exams(layout, paths)
    with store.session() as session:
        run = TriageRun(
            model_key=model_key,
            model_names=list(predictor.identity.names),
            device=predictor.identity.device,
            paths=[str(path) for path in paths],
            status=RunStatus.RUNNING,
        )
        session.add(run)
        session.flush()
        run_id = run.id
        _record_scan_failures(session, run_id, found)
        already = set(
            session.scalars(select(ExamRow.exam_key).join(ModelRun).where(ModelRun.model_key == model_key))
        )
        settings = site_settings(session, model_key) if dicom_out is not None else SiteSettings()
    summary = TriageSummary(run_id, model_key, exams_found=len(found.exams), ignored=found.ignored)
    summary.failed.extend(found.failures)
    to_score = [exam for exam in found.exams if exam.exam_id not in already]
    summary.skipped = len(found.exams) - len(to_score)
    exams = {exam.exam_id: exam for exam in to_score}
    log.info("triage: %d exams found, %d to score", len(found.exams), len(to_score))
    done = 0
    status = RunStatus.INTERRUPTED
    scoring_started = time.perf_counter()
    if ray_address is None:
        outcomes = score_jobs(predictor, map(exam_job, to_score), overlap, workers, cancelled)
    else:
        from app.triage.cluster import cluster_outcomes

        outcomes = cluster_outcomes(predictor, [exam_job(exam) for exam in to_score], ray_address, cancelled)
    try:
        for outcome in outcomes:
            exam = exams[outcome.key]
            with store.session() as session:
                row = ensure_exam(session, exam.exam_id, _source(exam), _image_refs(exam))
                if outcome.result is not None and _scored(session, row.id, model_key):
                    summary.skipped += 1  # another run stored it since the scan: the store keeps one
                elif outcome.result is not None:
                    save_exam_result(session, outcome.result, exam.exam_id)
                    session.execute(delete(TriageFailure).where(TriageFailure.exam_id == row.id))
                    summary.scored += 1
                else:
                    assert outcome.failure is not None
                    _record_failure(session, run_id, outcome.failure, exam_id=row.id)
                    summary.failed.append(outcome.failure)
                exam_row_id = row.id
            if outcome.result is not None and dicom_out is not None:
                failure = _export(exam, outcome.result, algorithm, dicom_out, settings)
                if failure is not None:
                    with store.session() as session:
                        _record_failure(session, run_id, failure, exam_id=exam_row_id)
                    summary.failed.append(failure)
            done += 1
            summary.timings.append(outcome.timings)
            if progress is not None:
                elapsed = time.perf_counter() - scoring_started
                progress(TriageProgress(done, len(to_score), summary.scored, done - summary.scored, elapsed))
        summary.cancelled = done < len(to_score)
        status = RunStatus.CANCELLED if summary.cancelled else RunStatus.FINISHED
    finally:
        outcomes.close()  # stops the feeding workers now, also when interrupted
        summary.elapsed_s = time.perf_counter() - started
        with store.session() as session:
            run = session.get_one(TriageRun, run_id)
            run.status = status
            run.scored, run.skipped, run.failed = summary.scored, summary.skipped, len(summary.failed)
            run.finished_at = utc_now()
    return summary


def _export(
    exam: Exam, result: ExamResult, algorithm: Algorithm, out_dir: Path, settings: SiteSettings
) -> Failure | None:
    """Write ``exam``'s results as DICOM objects with the site's settings (its views decoded again: the
    scoring workers keep only the model's input); why it could not, as a failure of stage "export"."""
    try:
        export_exam(
            result,
            load_standard_views(exam),
            algorithm,
            out_dir,
            settings.report_threshold,
            settings.calibration,
        )
    except (GMICError, ValueError) as error:  # ValueError: a source header highdicom refuses
        return Failure(exam.exam_id, FailureStage.EXPORT, str(error))
    return None


def _scored(session: Session, exam_row_id: int, model_key: str) -> bool:
    """Whether the model has a stored run on the exam. The unique constraint on (exam, model key)
    makes a concurrent writer's insert fail rather than store a second run."""
    query = select(ModelRun.id).where(ModelRun.exam_id == exam_row_id, ModelRun.model_key == model_key)
    return session.scalar(query) is not None


def _source(exam: Exam) -> str | None:
    return None if exam.source is None else str(exam.source)


def _image_refs(exam: Exam) -> list[ImageRef]:
    return [*exam.images.values(), *exam.extra_images]


def _record_scan_failures(session: Session, run_id: int, found: FoundExams) -> None:
    """Record this scan's file failures and forget earlier ones under the scanned roots that are gone."""
    current = {failure.key for failure in found.failures}
    for stale in session.scalars(select(TriageFailure).where(TriageFailure.path.is_not(None))):
        path = Path(stale.path)  # type: ignore[arg-type]
        if stale.path not in current and any(path.is_relative_to(root) for root in found.roots):
            session.delete(stale)
    session.flush()
    for failure in found.failures:
        _record_failure(session, run_id, failure, path=failure.key)


def _record_failure(
    session: Session, run_id: int, failure: Failure, exam_id: int | None = None, path: str | None = None
) -> None:
    """One row per exam or file: a repeated failure replaces the earlier record."""
    column = TriageFailure.exam_id if exam_id is not None else TriageFailure.path
    row = session.scalar(select(TriageFailure).where(column == (exam_id if exam_id is not None else path)))
    if row is None:
        row = TriageFailure(exam_id=exam_id, path=path)
        session.add(row)
    row.stage, row.error, row.triage_run_id, row.recorded_at = (
        failure.stage,
        failure.error[:4000],
        run_id,
        utc_now(),
    )
    # INFO, not WARNING: the summary lists every failure, and warnings would break the progress line.
    log.info("triage: failed at %s: %s", failure.stage, failure.message)
