"""The reader-study panel: a reader chooses a study (created with ``gmic study create``), reads its
cases in the order :mod:`app.study.service` gives, and submits each reading there.

The panel shows exactly what the protocol allows of the model: in an unaided phase nothing (the
window hides overlays, patches and worklist scores on :attr:`StudyPanel.task_changed`), in an aided
phase the study model's malignancy probability per breast and the hybrid for the reader's estimate.
The service measures reading time, commits each reading before ``submit`` returns and resumes where
the reader left off; the panel only ever shows the reader's own case in hand. Every call to the
service is a worker (:mod:`app.gui.study_tasks`) run by the window, one at a time: the panel's buttons
wait while one is in flight. Submit is enabled only while the window says the case is on screen
(:meth:`StudyPanel.set_on_screen`), and carries the case and phase shown, so a stale window's
submission is refused by the service.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.gui import study_tasks
from app.gui.side_panel import SIDES, BreastBox, percent
from app.gui.study_tasks import StudyStep
from app.gui.workers import Worker
from app.reading.readings import Estimate, hybrid_score
from app.store import Store
from app.study.service import CaseTask, ReaderSession, StudyService


class StudyPanel(QWidget):
    task_changed = Signal(object)  # the CaseTask to show, or None (no case: not reading, or all read)
    left = Signal()  # the reader left the study
    error = Signal(str)

    def __init__(
        self, store: Store | None, reader: str, run: Callable[[Worker], Worker], parent: QWidget | None = None
    ) -> None:
        """``run`` starts a worker on the window's pool of writes."""
        super().__init__(parent)
        self.service = None if store is None else StudyService(store)
        self._run = run
        self.busy = False  # a call to the service is in flight
        self.session: ReaderSession | None = None
        self.task: CaseTask | None = None
        self.unaided: frozenset[str] = frozenset()  # exams the reader has still to read unaided
        self.on_screen = False  # the case's views (and in an aided phase the model) are shown
        self.model_on_screen = False
        form = QFormLayout()
        self.reader = QLineEdit(reader)
        self.reader.setToolTip("Your reader id (not a patient's)")
        self.study = QComboBox()
        self.study.setToolTip("Studies in the database (created with 'gmic study create')")
        form.addRow("Reader", self.reader)
        form.addRow("Study", self.study)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start / resume")
        self.start_button.clicked.connect(self.start)
        self.leave_button = QPushButton("Leave study")
        self.leave_button.clicked.connect(self.leave)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.leave_button)
        self.progress = QLabel()
        self.case_label = QLabel()
        self.case_label.setWordWrap(True)
        self.breasts = {side: BreastBox(side) for side in SIDES}
        for box in self.breasts.values():
            box.benign.setText("-")
            box.form.setRowVisible(box.benign, False)
            box.probability.valueChanged.connect(lambda _value: self._refresh_hybrid())  # shown, not recorded
        navigation = QHBoxLayout()
        self.back_button = QPushButton("Back")
        self.back_button.setToolTip("Read the previous case again (only where the protocol allows it)")
        self.back_button.clicked.connect(self.go_back)
        self.submit_button = QPushButton("Submit and next")
        self.submit_button.clicked.connect(self.submit)
        navigation.addWidget(self.back_button)
        navigation.addWidget(self.submit_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.case_label)
        for box in self.breasts.values():
            layout.addWidget(box)
        layout.addLayout(navigation)
        layout.addStretch(1)
        self._show_task(None)

    def refresh_studies(self) -> None:
        """List the studies of the database in the study box."""
        if self.service is not None:
            worker = Worker("Listing the studies", study_tasks.study_names, self.service)
            worker.signals.result.connect(self._studies_listed)
            self._run(worker)

    def _studies_listed(self, names: list[str]) -> None:
        self.study.clear()
        self.study.addItems(names)

    def start(self) -> None:
        """Open (or resume) the chosen reader's session on the chosen study."""
        if self.service is None:
            self.error.emit("Reader studies need the database, which could not be opened.")
            return
        study, reader = self.study.currentText(), self.reader.text().strip()
        self._call(Worker("Opening the study", study_tasks.open_study, self.service, study, reader))

    def leave(self) -> None:
        """Stop reading; what was submitted is in the database and a new start resumes."""
        if self.busy:
            return  # the call in flight answers first
        self.session = None
        self.reader.setEnabled(True)
        self.study.setEnabled(True)
        self._show_task(None)
        self.left.emit()

    def set_on_screen(self, on_screen: bool, model_on_screen: bool) -> None:
        """What the window shows of the case in hand: all its views (and, in an aided phase, the
        study model's result), and whether the model's output is on screen."""
        self.on_screen = on_screen
        self.model_on_screen = model_on_screen
        self._enable_buttons()

    def submit(self) -> None:
        if self.session is None or self.task is None or self.busy:
            return
        if not self.on_screen:
            self.error.emit(f"Case {self.task.position + 1} is not on screen yet: wait for its views.")
            return
        estimates = {}
        for side in self.task.breasts:
            box = self.breasts[side]
            box.commit_pending()
            reading = box.reading()
            if reading.probability is None:
                self.error.emit(f"Give your probability of malignancy for the {side.name.lower()} breast.")
                return
            estimates[side] = reading
        self._call(
            Worker(
                "Submitting your reading",
                study_tasks.submit,
                self.service,
                self.session,
                self.task,
                estimates,
                self.model_on_screen,
            )
        )

    def go_back(self) -> None:
        if self.session is not None and not self.busy:
            self._call(Worker("Going back a case", study_tasks.go_back, self.service, self.session))

    def _call(self, worker: Worker) -> None:
        """Run a call to the service; the buttons wait for it (a reader session serves one thread)."""
        worker.signals.result.connect(self._stepped)
        worker.signals.finished.connect(lambda: self._set_busy(False))
        self._set_busy(True)
        self._run(worker)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._enable_buttons()

    def _stepped(self, step: StudyStep) -> None:
        if step.refusal is not None:  # a stale case (read in another window): the one to read now shows
            self.error.emit(step.refusal)
        self.session = step.session
        self.reader.setEnabled(False)
        self.study.setEnabled(False)
        self.unaided = step.unaided
        self.progress.setText(f"Read {step.progress.done} / {step.progress.total}")
        self._show_task(step.task)

    def _enable_buttons(self) -> None:
        idle, reading, task = not self.busy, self.session is not None, self.task
        self.start_button.setEnabled(idle and not reading)
        self.leave_button.setEnabled(idle and reading)
        self.back_button.setEnabled(idle and task is not None and task.may_go_back)
        self.submit_button.setEnabled(idle and task is not None and self.on_screen)

    def _show_task(self, task: CaseTask | None) -> None:
        self.task = task
        reading = self.session is not None
        self.on_screen = self.model_on_screen = False
        self._enable_buttons()
        if not reading:
            self.progress.setText("Not reading a study.")
        if task is None:
            self.case_label.setText("All cases are read. Thank you." if reading else "")
        else:
            shown = "with the model's output" if task.ai is not None else "without the model's output"
            again = " (reading again: this supersedes your earlier reading)" if task.revisiting else ""
            self.case_label.setText(
                f"Case {task.position + 1} of {task.total}, {task.phase.value}: {shown}{again}"
            )
        for side, box in self.breasts.items():
            box.setEnabled(task is not None and side in task.breasts)
            box.show_reading(Estimate())
            box.show_model(task is not None and task.ai is not None)
            box.form.setRowVisible(box.benign, False)
        self._refresh_hybrid()
        self.task_changed.emit(task)

    def _refresh_hybrid(self) -> None:
        ai = self.task.ai if self.task is not None else None
        for side, box in self.breasts.items():
            score = ai.scores.get(side) if ai is not None else None
            box.malignant.setText(percent(score))
            weight = ai.hybrid_weight if ai is not None else 0.0
            box.hybrid.setText(percent(hybrid_score(box.reading().probability, score, weight)))
