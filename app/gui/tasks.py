"""The long work of the workstation, as plain functions that run in worker threads (Qt-free).

Each takes a :class:`TaskContext` first: it reports progress and partial results through it and
asks it whether the user cancelled. None touches a widget; :mod:`app.gui.workers` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from app.gui.decoding import decode_shared, discard_when_done
from app.gui.imagery import DisplayImage
from app.reading.readings import Estimate, ModelShown, load_readings, save_reading
from app.store import Store, StoreError
from app.store.results import load_exam_result, save_exam_result
from app.study.service import exams_to_read_unaided
from app.triage import TriageProgress, TriageSummary, WorklistRow, run_triage, stored_calibration, worklist
from app.triage.operating_points import SiteSettings, site_settings
from gmic_core import imaging
from gmic_core.calibration import SiteCalibration
from gmic_core.errors import CalibrationError, GMICError
from gmic_core.imaging import Exam, Laterality, View
from gmic_core.inference import ExamResult, Predictor, ViewImage
from gmic_core.reporting.export import export_exam
from gmic_core.reporting.identity import Algorithm


class TaskContext(Protocol):
    def cancelled(self) -> bool: ...

    def progress(self, message: str, done: int, total: int) -> None: ...

    def partial(self, value: Any) -> None: ...


def check_cancelled(context: TaskContext, what: str) -> None:
    if context.cancelled():
        raise InterruptedError(f"{what} cancelled")


@dataclass(frozen=True)
class ViewLoaded:
    """One view of an exam, decoded (``image``) or not (``error``, a message for the reader)."""

    exam_id: str
    view: View
    image: DisplayImage | None = None
    error: str | None = None


def load_views(context: TaskContext, exam: Exam, pool: Executor) -> dict[View, DisplayImage]:
    """Decode the exam's standard views in parallel on ``pool`` (see :mod:`app.gui.decoding`), each
    reported as :class:`ViewLoaded` the moment it is ready; a view that cannot be decoded is
    reported with its error and left out. Cancelling drops the views not started yet."""
    views = [view for view in View if view in exam.images]
    loaded: dict[View, DisplayImage] = {}
    futures = {pool.submit(decode_shared, exam, view): view for view in views}
    unopened = set(futures)
    try:
        for done, future in enumerate(as_completed(futures), start=1):
            check_cancelled(context, "opening the exam")
            view = futures[future]
            unopened.discard(future)
            try:
                image = future.result().open()
            except GMICError as error:
                context.partial(ViewLoaded(exam.exam_id, view, error=str(error)))
            else:
                loaded[view] = image
                context.partial(ViewLoaded(exam.exam_id, view, image=image))
            context.progress("Reading images", done, len(views))
    finally:
        for future in unopened:
            future.cancel()
            discard_when_done(future)
    return loaded


def analyse(
    context: TaskContext, predictor: Predictor, exam: Exam, images: dict[View, DisplayImage] | None = None
) -> ExamResult:
    """GMIC on the exam: on the views already decoded for the screen, or decoding them first."""
    context.progress("Analysing", 0, 1)
    if images is None:
        result = predictor.predict_exam(exam, keep_patches=False, cancelled=context.cancelled)
    else:
        inputs = {
            view: ViewImage(image.mammogram.pixels, exam.horizontal_flip) for view, image in images.items()
        }
        result = predictor.predict(exam.exam_id, inputs, keep_patches=False, cancelled=context.cancelled)
    context.progress("Analysing", 1, 1)
    return result


def triage(context: TaskContext, store: Store, predictor: Predictor, paths: Sequence[Path]) -> TriageSummary:
    """Score every exam under ``paths`` the model has not scored yet (:func:`app.triage.run_triage`);
    each exam's progress is also sent as a partial result, once its result is stored."""

    def progress(update: TriageProgress) -> None:
        context.progress(f"Triage ({update.failed} failed)", update.done, update.total)
        context.partial(update)

    context.progress("Triage: reading the folders", 0, 0)
    return run_triage(store, predictor, paths, progress=progress, cancelled=context.cancelled)


def export_dicom(
    context: TaskContext,
    store: Store | None,
    result: ExamResult,
    images: Mapping[View, DisplayImage],
    algorithm: Algorithm,
    folder: Path,
) -> list[Path]:
    """Write the result of the exam on screen as DICOM objects into ``folder``
    (:func:`gmic_core.reporting.export.export_exam`), from the views decoded for the screen, with the
    site calibration and reporting threshold stored for the model (none without a database)."""
    context.progress("Exporting the results as DICOM", 0, 1)
    settings = SiteSettings()
    if store is not None:
        with store.session() as session:
            settings = site_settings(session, result.model.key)
    paths = export_exam(
        result,
        {view: image.mammogram for view, image in images.items()},
        algorithm,
        folder,
        settings.report_threshold,
        settings.calibration,
    )
    context.progress("Exporting the results as DICOM", 1, 1)
    return paths


def build_predictor(context: TaskContext, weights: Sequence[Path], device: str, precision: str) -> Predictor:
    context.progress("Loading the model", 0, 1)
    return Predictor.from_files(weights, device=device, precision=precision)


@dataclass
class ScanReport:
    """Exams found, and every path or file that could not be used with the reason."""

    exams: list[Exam] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)


def find_exams(context: TaskContext, paths: Sequence[Path]) -> ScanReport:
    """Every exam at ``paths`` (:func:`gmic_core.imaging.find_exams`: folders, DICOM files, exam.json
    manifests); a path, file or study that cannot be used is a failure with its reason."""

    def progress(done: int, total: int) -> None:
        check_cancelled(context, "reading the folder")
        context.progress("Reading " + ", ".join(path.name for path in paths), done, total)

    check_cancelled(context, "reading the folder")
    scan = imaging.find_exams(paths, progress)
    return ScanReport(scan.exams, scan.failures)


@dataclass(frozen=True)
class StoredScores:
    """The stored worklist rows and site calibration of one model."""

    model_key: str
    rows: list[WorklistRow]
    calibration: SiteCalibration | None


def stored_scores(context: TaskContext, store: Store, model_key: str) -> StoredScores:
    """The scores, flags and calibration stored for ``model_key`` (triage, earlier sessions)."""
    try:
        with store.session() as session:
            return StoredScores(
                model_key, worklist(session, model_key), stored_calibration(session, model_key)
            )
    except (SQLAlchemyError, CalibrationError) as error:
        raise StoreError(f"The stored scores could not be read: {error}") from error


def unaided_exams(context: TaskContext, store: Store, reader: str) -> frozenset[str]:
    """The exams ``reader`` still has to read unaided in a study (``app.reading.session``)."""
    try:
        with store.session() as session:
            return exams_to_read_unaided(session, reader)
    except SQLAlchemyError as error:
        raise StoreError(f"The study assignments could not be read: {error}") from error


def stored_readings(
    context: TaskContext, store: Store, reader: str, exam_id: str
) -> dict[Laterality, Estimate]:
    """``reader``'s latest stored estimate per breast of the exam (:func:`app.reading.readings.load_readings`)."""
    return load_readings(store, reader, exam_id)


def record_reading(
    context: TaskContext,
    store: Store,
    reader: str,
    exam_id: str,
    side: Laterality,
    estimate: Estimate,
    model: ModelShown | None,
) -> int:
    """Record the estimate the reader gave (:func:`app.reading.readings.save_reading`); returns its id."""
    try:
        return save_reading(store, reader, exam_id, side, estimate, model)
    except GMICError as error:
        raise StoreError(f"Your estimate is kept on screen but was not saved: {error}") from error


def stored_result(context: TaskContext, store: Store, exam_id: str, model_key: str) -> ExamResult | None:
    """The result stored for the exam and model (an earlier session, triage, ``gmic listen``), if any."""
    try:
        with store.session() as session:
            return load_exam_result(session, exam_id, model_key)
    except SQLAlchemyError as error:
        raise StoreError(f"Stored results could not be read: {error}") from error


def store_result(context: TaskContext, store: Store, result: ExamResult) -> None:
    try:
        with store.session() as session:
            save_exam_result(session, result)
    except SQLAlchemyError as error:
        raise StoreError(
            f"The result could not be stored (it is kept until the application closes): {error}"
        ) from error
