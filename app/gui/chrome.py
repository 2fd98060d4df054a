"""The window's chrome: menus, toolbar, status bar, the model banner, the message bar and the About
box. Layout only (checkable actions follow the view state); what the actions do is wired in
:mod:`app.gui.window`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolBar,
    QWidget,
)

from app.gui import pacs_dialog
from app.gui.settings import DEMO_MODEL, is_demo_model
from app.gui.state import Overlay, WindowAdjustment
from app.gui.workers import Worker

if TYPE_CHECKING:
    from app.gui.window import MainWindow

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
    """Errors and notices of routine work, inside the window; the close button dismisses them. A
    message the model banner already carries (:meth:`leave_to_banner`) is not shown again here."""

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
        self._on_banner: str | None = None

    def leave_to_banner(self, text: str | None) -> None:
        """``text`` is on the banner: hide it here and do not show it again while it is there."""
        self._on_banner = text
        if text is not None and self.isVisible() and self.text.text() == text:
            self.hide()

    def show_message(self, text: str, error: bool = True) -> None:
        if text == self._on_banner:
            return
        self.setStyleSheet(
            "background: #f4b0b0; color: black;" if error else "background: #cfe3ff; color: black;"
        )
        self.text.setText(text)
        self.show()


def _action(
    window: MainWindow, text: str, shortcut: str | None, slot: Callable[..., Any], checkable: bool = False
) -> QAction:
    action = QAction(text, window)
    if shortcut:
        action.setShortcut(QKeySequence(shortcut))
    action.setCheckable(checkable)
    (action.toggled if checkable else action.triggered).connect(slot)
    window.addAction(action)
    return action


def build_actions(window: MainWindow) -> None:
    window.open_action = _action(window, "Open folder...", "Ctrl+O", window.choose_folder)
    pacs_action = _action(
        window, "Open from PACS...", "Ctrl+Shift+O", lambda: pacs_dialog.open_from_pacs(window)
    )
    nodes_action = _action(window, "PACS nodes...", None, lambda: pacs_dialog.edit_nodes(window))
    window.triage_action = _action(window, "Triage a folder...", "Ctrl+T", window.batch.choose_triage_folder)
    window.export_action = _action(
        window, "Export results as DICOM...", None, window.batch.choose_export_folder
    )
    window.export_action.setEnabled(False)
    window.study_action = _action(window, "Reader study...", None, window.study.show_panel)
    quit_action = _action(window, "Quit", "Ctrl+Q", window.close)
    window.overlay_actions = {}
    for overlay, text, key in (
        (Overlay.BENIGN, "Benign saliency", "B"),
        (Overlay.MALIGNANT, "Malignant saliency", "M"),
        (Overlay.ROIS, "ROI boxes", "R"),
    ):
        action = _action(window, text, key, lambda on, o=overlay: window.state.set_overlay(o, on), True)
        action.setChecked(window.state.overlays[overlay])
        window.overlay_actions[overlay] = action
    window.invert_action = _action(window, "Invert", "I", lambda on: window.set_inverted(on), True)
    reset_action = _action(window, "Reset view", "Home", window.reset_view)
    window.link_action = _action(window, "Link zoom and pan", "L", window.state.set_linked, True)
    window.link_action.setChecked(window.state.linked)
    window.magnifier_action = _action(window, "Magnifier", "G", window.state.set_magnifier, True)
    back_action = _action(window, "Back to four views", "Esc", lambda: window.state.set_enlarged(None))
    next_action = _action(window, "Next exam", "N", lambda: window.step_exam(1))
    previous_action = _action(window, "Previous exam", "P", lambda: window.step_exam(-1))
    settings_action = _action(window, "Model and device...", "Ctrl+,", window.open_settings)
    analyse_action = _action(window, "Analyse again", None, window.analyse_again)
    about_action = _action(window, "About", None, lambda: about(window))

    menus = window.menuBar()
    file_menu = menus.addMenu("&File")
    file_menu.addAction(window.open_action)
    file_menu.addAction(pacs_action)
    file_menu.addAction(window.triage_action)
    file_menu.addAction(window.export_action)
    file_menu.addSeparator()
    file_menu.addAction(quit_action)
    view_menu = menus.addMenu("&View")
    for action in (
        *window.overlay_actions.values(),
        None,
        window.invert_action,
        reset_action,
        window.link_action,
        window.magnifier_action,
        back_action,
        None,
        next_action,
        previous_action,
    ):
        view_menu.addSeparator() if action is None else view_menu.addAction(action)
    menus.addMenu("&Study").addAction(window.study_action)
    settings_menu = menus.addMenu("&Settings")
    settings_menu.addAction(settings_action)
    settings_menu.addAction(nodes_action)
    settings_menu.addAction(analyse_action)
    menus.addMenu("&Help").addAction(about_action)

    toolbar = QToolBar("Display")
    toolbar.setMovable(False)
    for action in window.overlay_actions.values():
        toolbar.addAction(action)
    toolbar.addWidget(QLabel(" Opacity "))
    window.opacity_slider = QSlider(Qt.Orientation.Horizontal)
    window.opacity_slider.setRange(0, 100)
    window.opacity_slider.setValue(round(window.state.opacity * 100))
    window.opacity_slider.setFixedWidth(110)
    window.opacity_slider.valueChanged.connect(lambda value: window.state.set_opacity(value / 100))
    toolbar.addWidget(window.opacity_slider)
    legend = QLabel(LEGEND)
    legend.setContentsMargins(8, 0, 8, 0)
    toolbar.addWidget(legend)
    toolbar.addSeparator()
    toolbar.addWidget(QLabel(" Window "))
    window.preset_box = QComboBox()
    window.preset_box.setToolTip("The DICOM window presets of the exam (right-drag on an image adjusts)")
    window.preset_box.activated.connect(
        lambda index: window.state.set_window(
            WindowAdjustment(preset=index, inverted=window.state.window.inverted)
        )
    )
    toolbar.addWidget(window.preset_box)
    for action in (window.invert_action, reset_action, window.link_action, window.magnifier_action):
        toolbar.addAction(action)
    toolbar.addSeparator()
    for action in (previous_action, next_action):
        toolbar.addAction(action)
    window.addToolBar(toolbar)
    window.state.subscribe(lambda name: _check_actions(window, name))


def _check_actions(window: MainWindow, name: str) -> None:
    """The checkable actions follow the view state, however it changed."""
    if name == "overlays":
        for overlay, action in window.overlay_actions.items():
            action.setChecked(window.state.overlays[overlay])
    elif name == "window":
        window.invert_action.setChecked(window.state.window.inverted)
    elif name == "linked":
        window.link_action.setChecked(window.state.linked)


def about(window: MainWindow) -> None:
    QMessageBox.about(
        window,
        "GMIC Reader",
        "GMIC Reader: a reading workstation for screening mammography built around GMIC "
        "(Shen et al., Medical Image Analysis 2021). Research software, not a medical device.",
    )


class WorkProgress:
    """The status bar's account of the window's workers: the progress of the one that began reporting
    last of those still running, and once the last of them finishes, how it ended ("Analysis:
    done"), never its last percentage."""

    def __init__(self, label: QLabel, bar: QProgressBar) -> None:
        self.label = label
        self.bar = bar
        self._reports: dict[Worker, tuple[str, int, int]] = {}  # in the order of their first reports

    def track(self, worker: Worker) -> None:
        worker.signals.progress.connect(lambda *report: self._report(worker, report))
        worker.signals.finished.connect(lambda: self._finished(worker))

    def _report(self, worker: Worker, report: tuple[str, int, int]) -> None:
        self._reports[worker] = report
        self._show()

    def _finished(self, worker: Worker) -> None:
        if self._reports.pop(worker, None) is None:
            return  # it never reported, so nothing of it is on show
        if self._reports:
            self._show()
            return
        assert worker.outcome is not None  # set before finished is sent
        self.bar.hide()
        self.label.setText(f"{worker.name}: {worker.outcome.value}")

    def _show(self) -> None:
        message, done, total = next(reversed(self._reports.values()))
        self.label.setText(message)
        self.bar.setRange(0, total)  # 0 to 0: busy, the total unknown
        self.bar.setValue(done)
        self.label.show()
        self.bar.show()


def build_status_bar(window: MainWindow) -> None:
    bar = window.statusBar()
    window.progress_label = QLabel()
    window.progress = QProgressBar()
    window.progress.setFixedWidth(160)
    window.work_progress = WorkProgress(window.progress_label, window.progress)
    window.cancel_button = QPushButton("Cancel")
    window.cancel_button.clicked.connect(window.cancel_work)
    for widget in (window.progress_label, window.progress, window.cancel_button):
        widget.hide()
        bar.addWidget(widget)
    window.device_label = QLabel()
    window.model_label = QLabel()
    window.timing_label = QLabel("last inference: -")
    for widget in (window.device_label, window.model_label, window.timing_label):
        bar.addPermanentWidget(widget)


def show_model_status(window: MainWindow) -> None:
    predictor = window.predictor
    if predictor is not None:
        cards = [checkpoint.card for checkpoint in predictor.checkpoints]
        names = " + ".join(card.name for card in cards)
        window.model_label.setText(f"model: {names} ({predictor.precision})")
        window.device_label.setText(f"device: {predictor.identity.device}")
        demo_cards = [card for card in cards if is_demo_model(card.name, card.intended_use)]
        if demo_cards:
            card = demo_cards[0]
            set_banner(
                window,
                "demo",
                f"Synthetic demo model ({card.name}): trained on synthetic exams only. {card.intended_use}",
            )
        else:
            window.banner.hide()
        return
    window.model_label.setText("model: none")
    window.device_label.setText("device: -")
    window.messages.leave_to_banner(window.model_error)
    if window.model_pending:
        set_banner(window, "none", "Loading the model...")
    elif window.model_error:
        set_banner(
            window, "error", f"The model could not be loaded: {window.model_error}. Images can still be read."
        )
    elif not DEMO_MODEL.is_file() and not window.settings.weights:
        set_banner(
            window,
            "none",
            f"No model is available: the demo model ({DEMO_MODEL.name}) is not installed in "
            f"{DEMO_MODEL.parent}. Images can be viewed; choose a checkpoint in Settings > Model and device.",
        )
    else:
        set_banner(
            window,
            "none",
            "No model is set: images only. Choose a checkpoint in Settings > Model and device.",
        )


def set_banner(window: MainWindow, kind: str, text: str) -> None:
    window.banner.setStyleSheet(BANNER_STYLES[kind])
    window.banner.setText(text)
    window.banner.show()
