"""The main window: layout and wiring over the reading session (:mod:`app.reading.session`).

The session decides what is open and what of the model may be shown; the window draws what it says
(:meth:`MainWindow._session_changed`, the thin Qt adapter) and runs the long work on the worker pools:
opening an exam decodes its views on the I/O pool (each view appears when decoded); inference runs on
the compute pool, one exam at a time, its results cached per exam and model identity; the database is
read and written only by workers (:mod:`app.gui.persistence`, :mod:`app.gui.batch_actions`, the study
panel), never on the GUI thread. Errors are reported in the window's message bar, never in a modal
dialog, and the window goes on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QSplitter, QVBoxLayout, QWidget

from app.gui import chrome, demo, tasks
from app.gui.batch_actions import BatchActions
from app.gui.decoding import decoding_pool
from app.gui.persistence import Persistence
from app.gui.settings import Settings
from app.gui.settings_dialog import SettingsDialog
from app.gui.side_panel import SidePanel
from app.gui.state import ViewerState
from app.gui.study_panel import StudyPanel
from app.gui.study_wiring import StudyWiring
from app.gui.viewer import FourViewPanel, presets
from app.gui.workers import Worker, WorkerPool
from app.gui.worklist import ExamStatus, WorklistPanel
from app.reading.book import MemoryResultCache, ReadingBook
from app.reading.session import Change, ReadingSession
from app.store import Store, StoreError, open_store
from gmic_core.imaging import Exam, View
from gmic_core.inference import ExamResult, Predictor

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    settled = Signal(str)  # exam id: its views are shown and its analysis is done (or cannot be done)
    analysis_started = Signal(object)  # the Worker

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.setWindowTitle("GMIC Reader")
        self.settings = settings
        self.state = ViewerState()
        self.session = ReadingSession(settings.reader)
        self.store: Store | None = None
        store_error = None
        try:
            self.store = open_store(settings.db_url)
        except StoreError as error:
            store_error = f"The database could not be opened; results and estimates are kept until the window closes. {error}"
        self.io_pool = WorkerPool(2, self)
        self.persistence = Persistence(self)
        self.cache = MemoryResultCache()
        self.readings = ReadingBook(self.persistence.record_reading)
        self.compute_pool = WorkerPool(1, self)
        self.decoding_pool = decoding_pool()
        self.predictor: Predictor | None = None
        self.model_error: str | None = None
        self.model_pending = False
        self._settled_sent = False
        self._load_worker: Worker | None = None
        self._analysis_worker: Worker | None = None
        self.closed = False  # signals queued before closing still arrive: they start nothing
        self._build()
        self.session.subscribe(self._session_changed)
        if store_error:
            self.messages.show_message(store_error)
        self._load_unaided(settings.reader)

    def _build(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.messages = chrome.MessageBar()
        self.worklist = WorklistPanel()
        self.worklist.exam_chosen.connect(self.open_exam)
        self.viewer = FourViewPanel(self.state)
        self.side = SidePanel(self.state, self.readings)
        self.side.patch_selected.connect(self.viewer.focus)
        self.side.reading_changed.connect(self._reading_changed)
        self.study_panel = StudyPanel(self.store, self.settings.reader, self.persistence.run)
        self.study_panel.hide()
        splitter = QSplitter()
        for index, (widget, stretch) in enumerate(
            ((self.worklist, 0), (self.viewer, 1), (self.side, 0), (self.study_panel, 0))
        ):
            splitter.addWidget(widget)
            splitter.setStretchFactor(index, stretch)
        splitter.setSizes([300, 1000, 300, 300])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(self.messages)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.batch = BatchActions(self)
        self.study = StudyWiring(self)
        chrome.build_actions(self)
        chrome.build_status_bar(self)
        chrome.show_model_status(self)

    # --- the session, drawn ---------------------------------------------------------------------------

    def _session_changed(self, change: Change) -> None:
        session = self.session
        if change in (Change.RESULT, Change.BLINDING):
            shown = session.model_result
            exam_visible = session.exam is None or session.model_visible(session.exam.exam_id)
            for action in self.overlay_actions.values():
                action.setEnabled(exam_visible)
            self.opacity_slider.setEnabled(exam_visible)
            self.export_action.setEnabled(shown is not None)
            self.viewer.set_result(shown)
            self.side.set_result(shown, session.images)
            if change is Change.BLINDING:
                self.worklist.set_model_visible(session.model_visible, session.blinding)
            if session.result is not None:
                self._update_worklist_entry(session.result.exam_id, session.result)
        if change in (Change.RESULT, Change.SUBMITTABLE, Change.VIEWS):
            self.study_panel.set_on_screen(session.may_submit, session.model_result is not None)
        if change is Change.TASK:
            self.side.setVisible(not session.studying)
        self._check_settled()

    def _load_unaided(self, reader: str) -> None:
        """Restart: the exams the reader still has to read unaided stay hidden from the first moment."""
        if self.store is None:
            return
        worker = Worker("Reading the study assignments", tasks.unaided_exams, self.store, reader)
        worker.signals.result.connect(self.session.set_unaided)
        self.run_worker(self.io_pool, worker)

    # --- starting --------------------------------------------------------------------------------------

    def start(self, paths: list[Path]) -> None:
        """Load the model of the settings and the exams at ``paths`` (the demo exams when empty)."""
        self.load_model(self.settings)
        if paths:
            self.add_paths(paths)
        else:
            worker = Worker("Preparing the demo exams", demo.prepare_demo_exams, self.settings.demo_folder)
            worker.signals.partial.connect(self._exam_found)
            self.run_worker(self.io_pool, worker)

    def add_paths(self, paths: list[Path]) -> None:
        worker = Worker("Reading folders", tasks.find_exams, paths)
        worker.signals.result.connect(self._exams_found)
        self.run_worker(self.io_pool, worker)

    def run_worker(self, pool: WorkerPool, worker: Worker) -> Worker:
        if self.closed:
            return worker
        self.work_progress.track(worker)
        worker.signals.error.connect(self.messages.show_message)
        worker.signals.finished.connect(self.update_cancel_button)
        pool.start(worker)
        self.update_cancel_button()
        return worker

    def _exam_found(self, exam: Exam) -> None:
        self.worklist.add(exam)
        if self.session.exam is None and self.session.refusal_to_open(exam.exam_id) is None:
            self.open_exam(exam)

    def _exams_found(self, report: tasks.ScanReport) -> None:
        for exam in report.exams:
            self._exam_found(exam)
        self.batch.refresh_scores()
        if report.failures:
            _, reason = report.failures[0]
            more = f" (and {len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
            self.messages.show_message(f"Not every file could be used{more}: {reason}")

    # --- the model -------------------------------------------------------------------------------------

    def load_model(self, settings: Settings) -> None:
        self.settings = settings
        self.predictor = None
        self.model_error = None
        self.side.set_calibration(None)  # the next model's own, if any, comes with refresh_scores
        self.worklist.model.set_calibrated(False)
        self.model_pending = bool(settings.weights)
        chrome.show_model_status(self)
        if not settings.weights:
            return
        worker = Worker(
            "Loading the model", tasks.build_predictor, settings.weights, settings.device, settings.precision
        )
        worker.signals.result.connect(self._model_ready)
        worker.signals.error.connect(self._model_failed)
        self.run_worker(self.compute_pool, worker)

    def _model_ready(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.model_pending = False
        self.session.analysis_done = False
        chrome.show_model_status(self)
        self.batch.refresh_scores()
        self.analyse_if_needed()
        self._check_settled()

    def _model_failed(self, message: str) -> None:
        self.model_error = message
        self.model_pending = False
        chrome.show_model_status(self)
        self._check_settled()

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.load_model(dialog.chosen())

    # --- opening an exam -------------------------------------------------------------------------------

    def open_exam(self, exam: Exam) -> None:
        """Show ``exam`` (in study mode only the study's case: any other is refused with the reason)."""
        if self.closed:
            return
        refusal = self.session.refusal_to_open(exam.exam_id)
        if refusal is not None:
            self.messages.show_message(refusal, error=False)
            if self.session.exam is not None:
                self.worklist.select(self.session.exam.exam_id)
            return
        self.side.commit_pending()  # the reader moves on: an estimate still settling is given now
        if self._load_worker is not None:
            self._load_worker.cancel()
        if self._analysis_worker is not None and not self.session.is_open(exam.exam_id):
            self._analysis_worker.cancel()
        self._settled_sent = False
        self.session.open(exam)
        self.persistence.exam_opened(exam.exam_id)
        self.state.set_enlarged(None)
        self.viewer.show_exam(exam)
        self.side.show_exam(exam)
        self.worklist.select(exam.exam_id)
        self.preset_box.clear()
        if not exam.images:
            self.messages.show_message(
                f"This exam has none of the standard views ({', '.join(view.value for view in View)}); "
                "there is nothing to analyse."
            )
        exam_id = exam.exam_id
        worker = Worker("Opening the exam", tasks.load_views, exam, self.decoding_pool)
        worker.signals.partial.connect(self._view_loaded)
        worker.signals.result.connect(lambda images: self.session.views_loaded(exam_id, images))
        worker.signals.finished.connect(lambda: self._load_finished(exam_id))
        self._load_worker = self.run_worker(self.io_pool, worker)

    def _view_loaded(self, loaded: tasks.ViewLoaded) -> None:
        if not self.session.is_open(loaded.exam_id):
            return
        if loaded.image is None:
            self.session.view_failed(loaded.exam_id, loaded.view)
            self.viewer.set_view_error(loaded.view, loaded.error or "")
            self.messages.show_message(f"{loaded.view.value}: {loaded.error}")
            return
        self.session.view_decoded(loaded.exam_id, loaded.view, loaded.image)
        self.viewer.set_view_image(loaded.view, loaded.image)
        if self.preset_box.count() == 0:
            for index, voi in enumerate(presets(loaded.image)):
                self.preset_box.addItem(voi.explanation or f"window {index + 1}")

    def _load_finished(self, exam_id: str) -> None:
        if not self.session.is_open(exam_id):
            return
        self._load_worker = None
        self.session.views_loaded(exam_id, {})
        self.analyse_if_needed()

    # --- analysis --------------------------------------------------------------------------------------

    def analyse_if_needed(self, recompute: bool = False) -> None:
        session, predictor = self.session, self.predictor
        exam = session.exam
        if exam is None or not session.loaded or not session.images or self._analysis_worker is not None:
            return
        task = session.task if session.task is not None and session.is_open(session.task.exam_key) else None
        if session.studying:
            # a study shows only the stored result of its own model, and only where the protocol says
            if task is None or task.ai is None:
                session.set_result(None)
                return
            key = task.ai.model_key
        elif predictor is None:
            return
        else:
            key = predictor.identity.key
            result = session.result
            if not recompute and (session.analysis_done or (result is not None and result.model.key == key)):
                return
        exam_id = exam.exam_id
        if not recompute:
            if (cached := self.cache.get(exam_id, key)) is not None:
                session.set_result(cached)
                return
            if not self.persistence.looked_up(exam_id, key):  # then back here, the cache filled if stored
                self._start_analysis(exam_id, self.persistence.result_lookup(exam_id, key), self.io_pool)
                return
        if session.studying:
            session.set_result(None)  # the study's model has no stored result of this case
            return
        self.worklist.model.update(exam_id, ExamStatus.ANALYSING)
        worker = Worker("Analysis", tasks.analyse, predictor, exam, dict(session.images))
        worker.signals.result.connect(self._analysed)
        worker.signals.error.connect(lambda message: self._analysis_stopped(exam_id, None))
        self._start_analysis(exam_id, worker, self.compute_pool)
        self.analysis_started.emit(worker)

    def _start_analysis(self, exam_id: str, worker: Worker, pool: WorkerPool) -> None:
        worker.signals.cancelled.connect(lambda: self._analysis_stopped(exam_id, "Analysis cancelled."))
        worker.signals.finished.connect(self._analysis_finished)
        self._analysis_worker = self.run_worker(pool, worker)

    def _analysed(self, result: ExamResult) -> None:
        self.cache.put(result)
        self.persistence.store_result(result)
        self.timing_label.setText(f"last inference: {result.timings.get('total_s', 0.0):.2f} s")
        self._update_worklist_entry(result.exam_id, result)
        self.batch.refresh_scores()
        if self.session.studying:
            return  # the study's own display rules decide what is shown (see analyse_if_needed)
        if self.predictor is not None and result.model.key == self.predictor.identity.key:
            self.session.set_result(result)

    def _analysis_stopped(self, exam_id: str, notice: str | None) -> None:
        """Cancelled (with a notice) or failed (its error already shown): the exam keeps the result
        it had, if any."""
        cached = self.predictor and self.cache.get(exam_id, self.predictor.identity.key)
        if cached:
            self._update_worklist_entry(exam_id, cached)
        else:
            self.worklist.model.update(exam_id, ExamStatus.NEW if notice else ExamStatus.FAILED)
        if notice:
            self.messages.show_message(notice, error=False)
        self.session.analysis_finished_without_result(exam_id)

    def _analysis_finished(self) -> None:
        self._analysis_worker = None
        self._check_settled()
        # the exam on screen may have changed (or its model) while the previous analysis ran
        self.analyse_if_needed()

    def _update_worklist_entry(self, exam_id: str, result: ExamResult) -> None:
        read = self.readings.is_read(exam_id, tuple(result.breasts))
        score = result.malignancy_score
        calibration = self.side.calibration
        self.worklist.model.update(
            exam_id,
            ExamStatus.READ if read else ExamStatus.ANALYSED,
            score,
            probability=None if calibration is None else calibration.exam_probability(score),
            decile=None if calibration is None else calibration.decile(score),
        )

    def analyse_again(self) -> None:
        """Run the model on the exam on screen again, ignoring the cache (the result shown stays
        until the new one arrives); not in study mode."""
        if self._analysis_worker is None and self.session.analyse_again():
            self._settled_sent = False
            self.analyse_if_needed(recompute=True)

    def _reading_changed(self, exam_id: str) -> None:
        result = self.session.result
        if result is not None and result.exam_id == exam_id:
            self._update_worklist_entry(exam_id, result)

    def _check_settled(self) -> None:
        session = self.session
        if session.exam is None or self._settled_sent or not session.loaded or self.model_pending:
            return
        if self._analysis_worker is not None:
            return
        if self.predictor is not None and session.images and not session.analysis_done:
            return
        self._settled_sent = True
        self.settled.emit(session.exam.exam_id)

    # --- user actions ----------------------------------------------------------------------------------

    def cancel_work(self) -> None:
        """Cancel opening and analysing the exam on screen, and a triage run."""
        for worker in (self._load_worker, self._analysis_worker, self.batch.worker):
            if worker is not None:
                worker.cancel()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of exams")
        if folder:
            self.add_paths([Path(folder)])

    def step_exam(self, step: int) -> None:
        exam = self.worklist.neighbour(self.session.exam.exam_id if self.session.exam else None, step)
        if exam is not None:
            self.open_exam(exam)

    def set_inverted(self, inverted: bool) -> None:
        if inverted != self.state.window.inverted:
            self.state.toggle_inverted()

    def reset_view(self) -> None:
        self.state.reset_window()
        self.preset_box.setCurrentIndex(0)
        self.state.set_enlarged(None)
        self.viewer.reset_zoom()

    def update_cancel_button(self) -> None:
        workers = (self._load_worker, self._analysis_worker, self.batch.worker)
        self.cancel_button.setVisible(any(worker is not None for worker in workers))

    def closeEvent(self, event: QCloseEvent) -> None:
        self.side.commit_pending()  # closing moves on: an estimate still settling is given, and stored
        self.closed = True
        self.persistence.finish()
        self.io_pool.shut_down()
        self.compute_pool.shut_down()
        self.decoding_pool.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            self.store.dispose()
        super().closeEvent(event)
