"""The main window: worklist, hanging protocol and side panel; the workers that feed them.

Opening an exam decodes its views on the I/O pool (each view appears when decoded); inference runs
on the compute pool, one exam at a time, and its results are cached per exam and model identity.
Errors are reported in the window's message bar, never in a modal dialog, and the window goes on.

Results and the reader's estimates live in the database of the settings (``app.store``), so that
reopening an exam after a restart neither recomputes nor loses what the reader entered; when the
database cannot be opened the window says so and keeps them in memory. The study panel runs reader
studies (``app.study``): while its case is unaided nothing of the model is shown. A triage run
(``app.triage``) scores a folder in the background and fills the worklist's scores and flags.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from sqlalchemy.exc import SQLAlchemyError

from app.gui import demo, tasks
from app.gui.decoding import decoding_pool
from app.gui.imagery import DisplayImage
from app.gui.readings import MemoryResultCache, ReadingBook, ResultCache, StoreReadingBook, StoreResultCache
from app.gui.settings import DEMO_MODEL, Settings, is_demo_model
from app.gui.settings_dialog import SettingsDialog
from app.gui.side_panel import SidePanel
from app.gui.state import Overlay, ViewerState, WindowAdjustment
from app.gui.study_panel import StudyPanel
from app.gui.viewer import FourViewPanel, presets
from app.gui.workers import Worker, WorkerPool
from app.gui.worklist import ExamStatus, WorklistPanel
from app.store import Store, StoreError, open_store
from app.study.service import CaseTask
from app.triage import TriageSummary, stored_calibration, worklist
from gmic_core.errors import CalibrationError
from gmic_core.imaging import Exam, View
from gmic_core.inference import ExamResult, Predictor
from gmic_core.reporting.identity import Algorithm

log = logging.getLogger(__name__)

BANNER_STYLES = {
    "demo": "background: #ffe08a; color: black; padding: 4px;",
    "none": "background: #d0d0d0; color: black; padding: 4px;",
    "error": "background: #f4b0b0; color: black; padding: 4px;",
}
LEGEND = (
    "<span style='color:#00c000'>&#9632;</span> benign &nbsp; "
    "<span style='color:#ff0000'>&#9632;</span> malignant &nbsp; "
    "(stronger colour: higher saliency) &nbsp; <span style='color:#d4b000'>&#9633;</span> ROI, attention"
)


class MessageBar(QFrame):
    """Errors and notices of routine work, inside the window; the close button dismisses them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.text, 1)
        layout.addWidget(close)
        self.hide()

    def show_message(self, text: str, error: bool = True) -> None:
        self.setStyleSheet(
            "background: #f4b0b0; color: black;" if error else "background: #cfe3ff; color: black;"
        )
        self.text.setText(text)
        self.show()


class MainWindow(QMainWindow):
    settled = Signal(str)  # exam id: its views are shown and its analysis is done (or cannot be done)
    analysis_started = Signal(object)  # the Worker

    def __init__(
        self, settings: Settings, cache: ResultCache | None = None, readings: ReadingBook | None = None
    ) -> None:
        super().__init__()
        self.setWindowTitle("GMIC Reader")
        self.settings = settings
        self.state = ViewerState()
        self.store: Store | None = None
        store_error = None
        try:
            self.store = open_store(settings.db_url)
        except StoreError as error:
            store_error = f"The database could not be opened; results and estimates are kept until the window closes. {error}"
        if cache is None:
            cache = (
                MemoryResultCache()
                if self.store is None
                else StoreResultCache(self.store, self._store_failed)
            )
        if readings is None:
            readings = (
                ReadingBook()
                if self.store is None
                else StoreReadingBook(self.store, settings.reader, self._store_failed)
            )
        self.cache = cache
        self.readings = readings
        self.ai_shown = True
        self.study_task: CaseTask | None = None
        self._triage_worker: Worker | None = None
        self.io_pool = WorkerPool(2, self)
        self.compute_pool = WorkerPool(1, self)
        self.decoding_pool = decoding_pool()
        self.predictor: Predictor | None = None
        self.model_error: str | None = None
        self._model_pending = False
        self.exam: Exam | None = None
        self.images: dict[View, DisplayImage] = {}
        self.result: ExamResult | None = None
        self._loaded = False
        self._analysis_done = False
        self._settled_sent = False
        self._load_worker: Worker | None = None
        self._analysis_worker: Worker | None = None
        self._closed = False  # signals queued before closing still arrive: they start nothing
        self._build()
        if store_error:
            self.messages.show_message(store_error)

    # --- construction ------------------------------------------------------------------------------

    def _build(self) -> None:
        self.banner = QLabel()
        self.banner.setWordWrap(True)
        self.messages = MessageBar()
        self.worklist = WorklistPanel()
        self.worklist.exam_chosen.connect(self.open_exam)
        self.viewer = FourViewPanel(self.state)
        self.side = SidePanel(self.state, self.readings)
        self.side.patch_selected.connect(self.viewer.focus)
        self.side.reading_changed.connect(self._reading_changed)
        splitter = QSplitter()
        splitter.addWidget(self.worklist)
        splitter.addWidget(self.viewer)
        splitter.addWidget(self.side)
        self.study_panel = StudyPanel(self.store, self.settings.reader)
        self.study_panel.task_changed.connect(self._study_task_changed)
        self.study_panel.left.connect(self._study_left)
        self.study_panel.error.connect(self.messages.show_message)
        self.study_panel.hide()
        splitter.addWidget(self.study_panel)
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 0)
        splitter.setStretchFactor(3, 0)
        splitter.setSizes([300, 1000, 300, 300])
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(self.messages)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self._build_actions()
        self._build_status_bar()
        self.state.subscribe(self._state_changed)
        self._update_model_status()

    def _action(
        self, text: str, shortcut: str | None, slot: Callable[..., Any], checkable: bool = False
    ) -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("Open folder...", "Ctrl+O", self._choose_folder)
        self.triage_action = self._action("Triage a folder...", "Ctrl+T", self._choose_triage_folder)
        self.export_action = self._action("Export results as DICOM...", None, self._choose_export_folder)
        self.export_action.setEnabled(False)
        self.study_action = self._action("Reader study...", None, self.show_study_panel)
        quit_action = self._action("Quit", "Ctrl+Q", self.close)
        self.overlay_actions = {}
        for overlay, text, key in (
            (Overlay.BENIGN, "Benign saliency", "B"),
            (Overlay.MALIGNANT, "Malignant saliency", "M"),
            (Overlay.ROIS, "ROI boxes", "R"),
        ):
            action = self._action(text, key, lambda on, o=overlay: self.state.set_overlay(o, on), True)
            action.setChecked(self.state.overlays[overlay])
            self.overlay_actions[overlay] = action
        self.invert_action = self._action("Invert", "I", lambda on: self._set_inverted(on), True)
        reset_action = self._action("Reset view", "Home", self._reset_view)
        self.link_action = self._action("Link zoom and pan", "L", self.state.set_linked, True)
        self.link_action.setChecked(self.state.linked)
        self.magnifier_action = self._action("Magnifier", "G", self.state.set_magnifier, True)
        back_action = self._action("Back to four views", "Esc", lambda: self.state.set_enlarged(None))
        next_action = self._action("Next exam", "N", lambda: self._step_exam(1))
        previous_action = self._action("Previous exam", "P", lambda: self._step_exam(-1))
        settings_action = self._action("Model and device...", "Ctrl+,", self._open_settings)
        analyse_action = self._action("Analyse again", None, self.analyse_again)
        about_action = self._action("About", None, self._about)

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addAction(self.triage_action)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        view_menu = menus.addMenu("&View")
        for action in (
            *self.overlay_actions.values(),
            None,
            self.invert_action,
            reset_action,
            self.link_action,
            self.magnifier_action,
            back_action,
            None,
            next_action,
            previous_action,
        ):
            view_menu.addSeparator() if action is None else view_menu.addAction(action)
        menus.addMenu("&Study").addAction(self.study_action)
        settings_menu = menus.addMenu("&Settings")
        settings_menu.addAction(settings_action)
        settings_menu.addAction(analyse_action)
        menus.addMenu("&Help").addAction(about_action)

        toolbar = QToolBar("Display")
        toolbar.setMovable(False)
        for action in self.overlay_actions.values():
            toolbar.addAction(action)
        toolbar.addWidget(QLabel(" Opacity "))
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(round(self.state.opacity * 100))
        self.opacity_slider.setFixedWidth(110)
        self.opacity_slider.valueChanged.connect(lambda value: self.state.set_opacity(value / 100))
        toolbar.addWidget(self.opacity_slider)
        legend = QLabel(LEGEND)
        legend.setContentsMargins(8, 0, 8, 0)
        toolbar.addWidget(legend)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Window "))
        self.preset_box = QComboBox()
        self.preset_box.setToolTip("The DICOM window presets of the exam (right-drag on an image adjusts)")
        self.preset_box.activated.connect(
            lambda index: self.state.set_window(
                WindowAdjustment(preset=index, inverted=self.state.window.inverted)
            )
        )
        toolbar.addWidget(self.preset_box)
        for action in (self.invert_action, reset_action, self.link_action, self.magnifier_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        for action in (previous_action, next_action):
            toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.progress_label = QLabel()
        self.progress = QProgressBar()
        self.progress.setFixedWidth(160)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_work)
        for widget in (self.progress_label, self.progress, self.cancel_button):
            widget.hide()
            bar.addWidget(widget)
        self.device_label = QLabel()
        self.model_label = QLabel()
        self.timing_label = QLabel("last inference: -")
        for widget in (self.device_label, self.model_label, self.timing_label):
            bar.addPermanentWidget(widget)

    # --- starting ----------------------------------------------------------------------------------

    def start(self, paths: list[Path]) -> None:
        """Load the model of the settings and the exams at ``paths`` (the demo exams when empty)."""
        self.load_model(self.settings)
        if paths:
            self.add_paths(paths)
        else:
            worker = Worker("Preparing the demo exams", demo.prepare_demo_exams, self.settings.demo_folder)
            worker.signals.partial.connect(self._exam_found)
            self._run(self.io_pool, worker)

    def add_paths(self, paths: list[Path]) -> None:
        worker = Worker("Reading folders", tasks.find_exams, paths)
        worker.signals.result.connect(self._exams_found)
        self._run(self.io_pool, worker)

    def _run(self, pool: WorkerPool, worker: Worker) -> Worker:
        if self._closed:
            return worker
        worker.signals.progress.connect(self._progress)
        worker.signals.error.connect(self.messages.show_message)
        worker.signals.finished.connect(self._update_progress_visibility)
        pool.start(worker)
        self._update_progress_visibility()
        return worker

    def _exam_found(self, exam: Exam) -> None:
        self.worklist.add(exam)
        if self.exam is None:
            self.open_exam(exam)

    def _exams_found(self, report: tasks.ScanReport) -> None:
        for exam in report.exams:
            self._exam_found(exam)
        self.refresh_scores()
        if report.failures:
            _, reason = report.failures[0]
            more = f" (and {len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
            self.messages.show_message(f"Not every file could be used{more}: {reason}")

    # --- the model ----------------------------------------------------------------------------------

    def load_model(self, settings: Settings) -> None:
        self.settings = settings
        self.predictor = None
        self.model_error = None
        self.side.set_calibration(None)  # the next model's own, if any, comes with refresh_scores
        self.worklist.model.set_calibrated(False)
        if not settings.weights:
            self._model_pending = False
            self._update_model_status()
            return
        self._model_pending = True
        self._update_model_status()
        worker = Worker(
            "Loading the model", tasks.build_predictor, settings.weights, settings.device, settings.precision
        )
        worker.signals.result.connect(self._model_ready)
        worker.signals.error.connect(self._model_failed)
        self._run(self.compute_pool, worker)

    def _model_ready(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self._model_pending = False
        self._analysis_done = False
        self._update_model_status()
        self.refresh_scores()
        self._analyse_if_needed()
        self._check_settled()

    def _model_failed(self, message: str) -> None:
        self.model_error = message
        self._model_pending = False
        self._update_model_status()
        self._check_settled()

    def _update_model_status(self) -> None:
        predictor = self.predictor
        if predictor is not None:
            cards = [checkpoint.card for checkpoint in predictor.checkpoints]
            names = " + ".join(card.name for card in cards)
            self.model_label.setText(f"model: {names} ({predictor.precision})")
            self.device_label.setText(f"device: {predictor.identity.device}")
            demo_cards = [card for card in cards if is_demo_model(card.name, card.intended_use)]
            if demo_cards:
                card = demo_cards[0]
                self._set_banner(
                    "demo",
                    f"Synthetic demo model ({card.name}): trained on synthetic exams only. {card.intended_use}",
                )
            else:
                self.banner.hide()
            return
        self.model_label.setText("model: none")
        self.device_label.setText("device: -")
        if self._model_pending:
            self._set_banner("none", "Loading the model...")
        elif self.model_error:
            self._set_banner(
                "error", f"The model could not be loaded: {self.model_error}. Images can still be read."
            )
        elif not DEMO_MODEL.is_file() and not self.settings.weights:
            self._set_banner(
                "none",
                f"No model is available: the demo model ({DEMO_MODEL.name}) is not installed in "
                f"{DEMO_MODEL.parent}. Images can be viewed; choose a checkpoint in Settings > Model and device.",
            )
        else:
            self._set_banner(
                "none", "No model is set: images only. Choose a checkpoint in Settings > Model and device."
            )

    def _set_banner(self, kind: str, text: str) -> None:
        self.banner.setStyleSheet(BANNER_STYLES[kind])
        self.banner.setText(text)
        self.banner.show()

    def _open_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        if dialog.exec():
            self.load_model(dialog.chosen())

    # --- opening an exam ------------------------------------------------------------------------------

    def open_exam(self, exam: Exam) -> None:
        if self._closed:
            return
        if self._load_worker is not None:
            self._load_worker.cancel()
        if self._analysis_worker is not None and self.exam is not None and self.exam.exam_id != exam.exam_id:
            self._analysis_worker.cancel()
        self.exam = exam
        self.images = {}
        self.result = None
        self._update_export_action()
        self._loaded = False
        self._analysis_done = False
        self._settled_sent = False
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
        worker.signals.result.connect(lambda images: self._views_loaded(exam_id, images))
        worker.signals.finished.connect(lambda: self._load_finished(exam_id))
        self._load_worker = self._run(self.io_pool, worker)

    def _view_loaded(self, loaded: tasks.ViewLoaded) -> None:
        if self.exam is None or loaded.exam_id != self.exam.exam_id:
            return
        if loaded.image is None:
            self.viewer.set_view_error(loaded.view, loaded.error or "")
            self.messages.show_message(f"{loaded.view.value}: {loaded.error}")
            return
        self.images[loaded.view] = loaded.image
        self.viewer.set_view_image(loaded.view, loaded.image)
        if self.preset_box.count() == 0:
            for index, voi in enumerate(presets(loaded.image)):
                self.preset_box.addItem(voi.explanation or f"window {index + 1}")

    def _views_loaded(self, exam_id: str, images: dict[View, DisplayImage]) -> None:
        if self.exam is not None and exam_id == self.exam.exam_id:
            self.images = dict(images)

    def _load_finished(self, exam_id: str) -> None:
        if self.exam is None or exam_id != self.exam.exam_id:
            return
        self._load_worker = None
        self._loaded = True
        self._analyse_if_needed()
        self._check_settled()

    # --- analysis -------------------------------------------------------------------------------------

    def _analyse_if_needed(self, recompute: bool = False) -> None:
        exam, predictor = self.exam, self.predictor
        if exam is None or predictor is None or not self._loaded or not self.images:
            return
        if self._analysis_worker is not None:
            return
        if self.study_task is not None:
            # a study shows only the stored result of its own model, and only where the protocol says
            ai = self.study_task.ai
            stored = None if ai is None else self.cache.get(exam.exam_id, ai.model_key)
            self._analysis_done = True
            if stored is not None:
                self._show_result(stored)
            return
        if not recompute:
            if self._analysis_done or (
                self.result is not None and self.result.model.key == predictor.identity.key
            ):
                return
            cached = self.cache.get(exam.exam_id, predictor.identity.key)
            if cached is not None:
                self._analysis_done = True
                self._show_result(cached)
                return
        self.worklist.model.update(exam.exam_id, ExamStatus.ANALYSING)
        exam_id = exam.exam_id
        worker = Worker("Analysis", tasks.analyse, predictor, exam, dict(self.images))
        worker.signals.result.connect(self._analysed)
        worker.signals.cancelled.connect(lambda: self._analysis_stopped(exam_id, "Analysis cancelled."))
        worker.signals.error.connect(lambda message: self._analysis_stopped(exam_id, None))
        worker.signals.finished.connect(self._analysis_finished)
        self._analysis_worker = self._run(self.compute_pool, worker)
        self.analysis_started.emit(worker)

    def _analysed(self, result: ExamResult) -> None:
        self.cache.put(result)
        self.timing_label.setText(f"last inference: {result.timings.get('total_s', 0.0):.2f} s")
        self._update_worklist_entry(result.exam_id, result)
        self.refresh_scores()
        current = self.exam is not None and result.exam_id == self.exam.exam_id
        if self.study_task is not None:
            return  # the study's own display rules decide what is shown (see _analyse_if_needed)
        if current and self.predictor is not None and result.model.key == self.predictor.identity.key:
            self._analysis_done = True
            self._show_result(result)

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
        if self.exam is not None and exam_id == self.exam.exam_id:
            self._analysis_done = True

    def _analysis_finished(self) -> None:
        self._analysis_worker = None
        self._check_settled()
        # the exam on screen may have changed (or its model) while the previous analysis ran
        self._analyse_if_needed()

    def _show_result(self, result: ExamResult) -> None:
        self.result = result
        self._update_export_action()
        self.viewer.set_result(result if self.ai_shown else None)
        self.side.set_result(result if self.ai_shown else None, self.images)
        self._update_worklist_entry(result.exam_id, result)
        self._check_settled()

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

    def refresh_scores(self) -> None:
        """The stored scores, flags and site calibration of the current model for the exams listed
        (triage results, results of earlier sessions)."""
        if self.store is None or self.predictor is None:
            return
        try:
            with self.store.session() as session:
                rows = worklist(session, self.predictor.identity.key)
                calibration = stored_calibration(session, self.predictor.identity.key)
        except (SQLAlchemyError, CalibrationError) as error:
            self._store_failed(f"The stored scores could not be read: {error}")
            return
        self.side.set_calibration(calibration)
        self.worklist.model.set_calibrated(calibration is not None)
        for row in rows:
            entry = row.exam_id is not None and self.worklist.model.entry(row.exam_id)
            if not entry:
                continue
            if row.score is None:
                if entry.status is ExamStatus.NEW:
                    self.worklist.model.update(row.exam_id, ExamStatus.FAILED)
                continue
            status = ExamStatus.ANALYSED if entry.status in (ExamStatus.NEW, ExamStatus.FAILED) else None
            self.worklist.model.update(row.exam_id, status, row.score, row.flags, row.probability, row.decile)

    def analyse_again(self) -> None:
        """Run the model on the exam on screen again, ignoring the cache (the result shown stays
        until the new one arrives)."""
        if self.study_task is not None:
            return
        if self.exam is not None and self._analysis_worker is None:
            self._analysis_done = False
            self._settled_sent = False
            self._analyse_if_needed(recompute=True)

    def _reading_changed(self, exam_id: str) -> None:
        if self.result is not None and self.result.exam_id == exam_id:
            self._update_worklist_entry(exam_id, self.result)

    def _check_settled(self) -> None:
        if self.exam is None or self._settled_sent or not self._loaded or self._model_pending:
            return
        if self._analysis_worker is not None:
            return
        if self.predictor is not None and self.images and not self._analysis_done:
            return
        self._settled_sent = True
        self.settled.emit(self.exam.exam_id)

    def _store_failed(self, message: str) -> None:
        self.messages.show_message(message)

    # --- triage ---------------------------------------------------------------------------------------

    def _choose_triage_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Triage a folder of exams")
        if folder:
            self.start_triage(Path(folder))

    def start_triage(self, folder: Path) -> None:
        """List the exams of ``folder`` and score, in the background, those the model has not scored;
        scores and flags fill the worklist as results are stored. Cancel stops after the exam in hand."""
        if self.store is None:
            self.messages.show_message(
                "Triage stores its results in the database, which could not be opened."
            )
            return
        if self.predictor is None:
            self.messages.show_message("Triage needs a model: choose one in Settings > Model and device.")
            return
        if self._triage_worker is not None:
            self.messages.show_message("A triage run is in progress already.", error=False)
            return
        self.add_paths([folder])
        worker = Worker("Triage", tasks.triage, self.store, self.predictor, [folder])
        worker.signals.partial.connect(lambda _: self.refresh_scores())
        worker.signals.result.connect(self._triage_done)
        worker.signals.cancelled.connect(
            lambda: self.messages.show_message("Triage cancelled; starting it again resumes.", error=False)
        )
        worker.signals.finished.connect(self._triage_finished)
        self._triage_worker = self._run(self.compute_pool, worker)
        self._update_progress_visibility()

    def _triage_done(self, summary: TriageSummary) -> None:
        failed = f", {len(summary.failed)} could not be scored" if summary.failed else ""
        self.messages.show_message(
            f"Triage: {summary.scored} exams scored, {summary.skipped} scored before{failed}.", error=False
        )

    def _triage_finished(self) -> None:
        self._triage_worker = None
        self.refresh_scores()
        self._update_progress_visibility()
        self._analyse_if_needed()

    # --- results as DICOM -----------------------------------------------------------------------------

    def _update_export_action(self) -> None:
        """Export needs a result on screen (none while a study hides the model)."""
        self.export_action.setEnabled(self.result is not None and self.ai_shown)

    def _choose_export_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the results as DICOM into a folder")
        if folder:
            self.export_results(Path(folder))

    def export_results(self, folder: Path) -> Worker | None:
        """Write the result on screen as DICOM objects (CAD SR, TID 1500 report, segmentations,
        Secondary Capture) into ``folder``, in the background; a failure is shown like other errors."""
        if self.result is None or self.predictor is None:
            return None
        if self.result.model.key != self.predictor.identity.key:
            self.messages.show_message(
                "The result on screen is of another model: analyse the exam again first."
            )
            return None
        algorithm = Algorithm.of(self.predictor.checkpoints)
        worker = Worker(
            "Export as DICOM", tasks.export_dicom, self.result, dict(self.images), algorithm, folder
        )
        worker.signals.result.connect(
            lambda paths: self.messages.show_message(
                f"Results written as {len(paths)} DICOM objects to {folder}.", error=False
            )
        )
        return self._run(self.io_pool, worker)

    # --- reader studies -------------------------------------------------------------------------------

    def show_study_panel(self) -> None:
        self.study_panel.refresh_studies()
        self.study_panel.show()

    def _study_task_changed(self, task: CaseTask | None) -> None:
        reading = self.study_panel.session is not None
        self.study_task = task
        self.side.setVisible(not reading)
        self.set_ai_shown(not reading or (task is not None and task.ai is not None))
        if task is None:
            return
        entry = self.worklist.model.entry(task.exam_key)
        if entry is not None:
            self.open_exam(entry.exam)
        elif task.source:
            worker = Worker("Reading the study case", tasks.find_exams, [Path(task.source)])
            worker.signals.result.connect(lambda report: self._study_case_found(task, report))
            self._run(self.io_pool, worker)
        else:
            self.messages.show_message(f"The study does not say where case {task.case_key} lies.")

    def _study_case_found(self, task: CaseTask, report: tasks.ScanReport) -> None:
        if task is not self.study_task:
            return
        exam = next((exam for exam in report.exams if exam.exam_id == task.exam_key), None)
        if exam is None:
            self.messages.show_message(f"Case {task.case_key} was not found at {task.source}.")
            return
        self.worklist.add(exam)
        self.open_exam(exam)

    def _study_left(self) -> None:
        self.study_panel.hide()
        self.side.show()
        self.set_ai_shown(True)
        if self.exam is not None:
            self.open_exam(self.exam)

    def set_ai_shown(self, shown: bool) -> None:
        """Show or hide everything of the model: overlays, probabilities, ROI boxes and patches,
        worklist scores and flags."""
        self.ai_shown = shown
        self.worklist.set_ai_shown(shown)
        for action in self.overlay_actions.values():
            action.setEnabled(shown)
        self.opacity_slider.setEnabled(shown)
        self._update_export_action()
        self.viewer.set_result(self.result if shown else None)
        self.side.set_result(self.result if shown else None, self.images)

    # --- user actions ---------------------------------------------------------------------------------

    def cancel_work(self) -> None:
        """Cancel opening and analysing the exam on screen, and a triage run."""
        for worker in (self._load_worker, self._analysis_worker, self._triage_worker):
            if worker is not None:
                worker.cancel()

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of exams")
        if folder:
            self.add_paths([Path(folder)])

    def _step_exam(self, step: int) -> None:
        exam = self.worklist.neighbour(self.exam.exam_id if self.exam else None, step)
        if exam is not None:
            self.open_exam(exam)

    def _set_inverted(self, inverted: bool) -> None:
        if inverted != self.state.window.inverted:
            self.state.toggle_inverted()

    def _reset_view(self) -> None:
        self.state.reset_window()
        self.preset_box.setCurrentIndex(0)
        self.state.set_enlarged(None)
        self.viewer.reset_zoom()

    def _state_changed(self, name: str) -> None:
        if name == "overlays":
            for overlay, action in self.overlay_actions.items():
                action.setChecked(self.state.overlays[overlay])
        elif name == "window":
            self.invert_action.setChecked(self.state.window.inverted)
        elif name == "linked":
            self.link_action.setChecked(self.state.linked)

    def _about(self) -> None:
        QMessageBox.about(
            self,
            "GMIC Reader",
            "GMIC Reader: a reading workstation for screening mammography built around GMIC "
            "(Shen et al., Medical Image Analysis 2021). Research software, not a medical device.",
        )

    # --- progress -------------------------------------------------------------------------------------

    def _progress(self, message: str, done: int, total: int) -> None:
        self.progress_label.setText(message)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self._update_progress_visibility()

    def _update_progress_visibility(self) -> None:
        busy = self.io_pool.active + self.compute_pool.active > 0
        for widget in (self.progress_label, self.progress):
            widget.setVisible(busy)
        self.cancel_button.setVisible(
            any(
                worker is not None
                for worker in (self._load_worker, self._analysis_worker, self._triage_worker)
            )
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        self.io_pool.shut_down()
        self.compute_pool.shut_down()
        self.decoding_pool.shutdown(wait=True, cancel_futures=True)
        if self.store is not None:
            self.store.dispose()
        super().closeEvent(event)
