"""The reader-study panel: a reader chooses a study (created with ``gmic study create``), reads its
cases in the order :mod:`app.study.service` gives, and submits each reading there.

The panel shows exactly what the protocol allows of the model: in an unaided phase nothing (the
window hides overlays, patches and worklist scores on :attr:`StudyPanel.task_changed`), in an aided
phase the study model's malignancy probability per breast and the hybrid for the reader's estimate.
The service measures reading time, commits each reading before ``submit`` returns and resumes where
the reader left off; the panel only ever shows the reader's own case in hand. Every call to the
service that reaches the database is a worker (:mod:`app.gui.study_tasks`) on the window's pool of
writes, so they run one at a time, in order: the panel's buttons wait while a step is in flight. Submit
is enabled only while the window says the case is on screen (:meth:`StudyPanel.set_on_screen`, which
also starts the reading clock), and carries the case and phase shown, so a stale window's submission is
refused by the service. Recall starts unanswered (a partly checked box); where the study says so,
Submit asks for confirmation, and answers that contradict each other are submitted only once the
reader confirms them (:attr:`StudyPanel.ask`, a yes/no question); a refused submission of the case in
hand keeps the reader's answers. Pause stops the reading clock (no database: on the GUI thread). In a
sequential study's aided phase the reader's own unaided answers are shown beside the model's.
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
    QMessageBox,
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
from gmic_core.imaging import Laterality

RECALL_ANSWERS = {True: "recall", False: "no recall", None: "recall not given"}


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
        self._in_flight: Worker | None = None  # the step (a call to the service) in flight
        self.session: ReaderSession | None = None
        self.task: CaseTask | None = None
        self.unaided: frozenset[str] = frozenset()  # exams the reader has still to read unaided
        self.on_screen = False  # the case's views (and in an aided phase the model) are shown
        self.model_on_screen = False
        self.ask = self._ask  # a yes/no question to the reader (tests answer it themselves)
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
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("Stop the reading clock (a break); press again to carry on")
        self.pause_button.toggled.connect(self._pause)
        navigation.addWidget(self.pause_button)
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
        shown_now = on_screen and not self.on_screen
        self.on_screen = on_screen
        self.model_on_screen = model_on_screen
        self._enable_buttons()
        if shown_now and self.session is not None and self.task is not None:
            self._run(Worker("Starting the reading clock", study_tasks.views_shown, self.session, self.task))

    def submit(self) -> None:
        if self.session is None or self.task is None or self.busy:
            return
        if not self.on_screen:
            self.error.emit(f"Case {self.task.position + 1} is not on screen yet: wait for its views.")
            return
        estimates = self._estimates(self.task)
        if estimates is None:
            return
        if self.session.confirm_submit and not self.ask(
            f"Submit case {self.task.position + 1}? A submitted reading cannot be changed."
        ):
            return
        self._submit(self.session, self.task, estimates, confirmed=False)

    def _estimates(self, task: CaseTask) -> dict[Laterality, Estimate] | None:
        """The reader's answers for ``task``'s breasts; None (and the reason on :attr:`error`) while a
        probability is missing."""
        estimates = {}
        for side in task.breasts:
            box = self.breasts[side]
            box.commit_pending()
            reading = box.reading()
            if reading.probability is None:
                self.error.emit(f"Give your probability of malignancy for the {side.name.lower()} breast.")
                return None
            estimates[side] = reading
        return estimates

    def _submit(
        self, session: ReaderSession, task: CaseTask, estimates: dict[Laterality, Estimate], confirmed: bool
    ) -> None:
        model_shown = self.model_on_screen
        arguments = (self.service, session, task, estimates, model_shown, confirmed)
        self._call(Worker("Submitting your reading", study_tasks.submit, *arguments))

    def _ask(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Reader study", question)
        return answer == QMessageBox.StandardButton.Yes

    def _pause(self, paused: bool) -> None:
        if self.session is None:
            return
        if paused:
            self.session.pause()
        else:
            self.session.resume()
        self.pause_button.setText("Carry on" if paused else "Pause")

    def go_back(self) -> None:
        if self.session is not None and not self.busy:
            self._call(Worker("Going back a case", study_tasks.go_back, self.service, self.session))

    @property
    def busy(self) -> bool:
        """A step (a call to the service) is in flight."""
        return self._in_flight is not None

    def _call(self, worker: Worker) -> None:
        """Run a step; the buttons wait for it. A step may start the next (a confirmed resubmission)
        from its result, before its own ``finished``: only the last one started frees the buttons."""
        worker.signals.result.connect(self._stepped)
        worker.signals.finished.connect(lambda: self._finished(worker))
        self._in_flight = worker
        self._enable_buttons()
        self._run(worker)

    def _finished(self, worker: Worker) -> None:
        if self._in_flight is worker:
            self._in_flight = None
            self._enable_buttons()

    def _stepped(self, step: StudyStep) -> None:
        if step.contradiction is not None:  # nothing recorded: the answers stay in the form
            estimates = self._estimates(step.task) if step.task is not None else None
            if estimates is not None and self.ask(
                f"{step.contradiction}\n\nSubmit these answers as they are?"
            ):
                self._submit(step.session, step.task, estimates, confirmed=True)
            return
        if step.refusal is not None:
            self.error.emit(step.refusal)
            if step.task == self.task:
                return  # the case in hand is still to read: the reader's answers stay
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
        self.pause_button.setEnabled(idle and task is not None)

    def _show_task(self, task: CaseTask | None) -> None:
        self.task = task
        reading = self.session is not None
        self.pause_button.blockSignals(True)  # a new case starts unpaused (a submission ends a pause)
        self.pause_button.setChecked(False)
        self.pause_button.setText("Pause")
        self.pause_button.blockSignals(False)
        self.on_screen = self.model_on_screen = False
        self._enable_buttons()
        if not reading:
            self.progress.setText("Not reading a study.")
        if task is None:
            self.case_label.setText("All cases are read. Thank you." if reading else "")
        else:
            shown = "with the model's output" if task.ai is not None else "without the model's output"
            again = " (reading again: this supersedes your earlier reading)" if task.revisiting else ""
            earlier = "".join(
                f"\nYour unaided {side.name.lower()}: {percent(answer.probability)}, BI-RADS {answer.birads}, "
                f"{RECALL_ANSWERS[answer.recall]}"
                for side, answer in sorted(task.earlier.items())
            )
            self.case_label.setText(
                f"Case {task.position + 1} of {task.total}, {task.phase.value}: {shown}{again}{earlier}"
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
