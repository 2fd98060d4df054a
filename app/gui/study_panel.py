"""The reader-study panel: a reader chooses a study (created with ``gmic study create``), reads its
cases in the order :mod:`app.study.service` gives, and submits each reading there.

The panel shows exactly what the protocol allows of the model: in an unaided phase nothing (the
window hides overlays, patches and worklist scores on :attr:`StudyPanel.task_changed`), in an aided
phase the study model's malignancy probability per breast and the hybrid for the reader's estimate.
The service measures reading time, commits each reading before ``submit`` returns and resumes where
the reader left off; the panel only ever shows the reader's own case in hand. Submit is enabled only
while the window says the case is on screen (:meth:`StudyPanel.set_on_screen`, which also starts the
reading clock), and carries the case and phase shown, so a stale window's submission is refused by the
service. Recall starts unanswered (a partly checked box); where the study says so, Submit asks for
confirmation, and answers that contradict each other are submitted only once the reader confirms
them (:attr:`StudyPanel.ask`, a yes/no question). Pause stops the reading clock. In a sequential
study's aided phase the reader's own unaided answers are shown beside the model's.
"""

from __future__ import annotations

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
from sqlalchemy.exc import SQLAlchemyError

from app.gui.side_panel import SIDES, BreastBox, percent
from app.reading.readings import Estimate, hybrid_score
from app.store import Store
from app.study.service import CaseTask, ContradictionError, ReaderSession, StudyService
from gmic_core.errors import GMICError

FAILURES = (GMICError, SQLAlchemyError)  # what the service raises: the study's rules, the database


class StudyPanel(QWidget):
    task_changed = Signal(object)  # the CaseTask to show, or None (no case: not reading, or all read)
    left = Signal()  # the reader left the study
    error = Signal(str)

    def __init__(self, store: Store | None, reader: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.service = None if store is None else StudyService(store)
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
            box.recall.setTristate(True)
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
        self.refresh_studies()
        self._show_task(None)

    def refresh_studies(self) -> None:
        self.study.clear()
        if self.service is None:
            return
        try:
            self.study.addItems(self.service.study_names())
        except FAILURES as error:
            self.error.emit(str(error))

    def start(self) -> None:
        """Open (or resume) the chosen reader's session on the chosen study."""
        if self.service is None:
            self.error.emit("Reader studies need the database, which could not be opened.")
            return
        try:
            self.session = self.service.open_session(self.study.currentText(), self.reader.text().strip())
        except FAILURES as error:
            self.error.emit(str(error))
            return
        self.reader.setEnabled(False)
        self.study.setEnabled(False)
        self._next()

    def leave(self) -> None:
        """Stop reading; what was submitted is in the database and a new start resumes."""
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
        self.submit_button.setEnabled(self.task is not None and on_screen)
        if on_screen and self.session is not None and self.task is not None:
            try:
                self.session.views_shown(self.task)
            except FAILURES as error:
                self.error.emit(str(error))

    def submit(self) -> None:
        if self.session is None or self.task is None:
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
        if self.session.confirm_submit and not self.ask(
            f"Submit case {self.task.position + 1}? A submitted reading cannot be changed."
        ):
            return
        try:
            try:
                self.session.submit(self.task, estimates, model_shown=self.model_on_screen)
            except ContradictionError as contradiction:
                if not self.ask(f"{contradiction}\n\nSubmit these answers as they are?"):
                    return
                self.session.submit(self.task, estimates, model_shown=self.model_on_screen, confirmed=True)
        except FAILURES as error:
            self.error.emit(str(error))
            self._next()  # a stale case (read in another window): show the one to read now
            return
        self._next()

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
        if self.session is None:
            return
        try:
            task = self.session.go_back()
        except FAILURES as error:
            self.error.emit(str(error))
            return
        self._show_task(task)

    def _next(self) -> None:
        assert self.session is not None
        assert self.service is not None
        try:
            task = self.session.current()
            self.unaided = self.service.exams_to_read_unaided(self.session.reader)
        except FAILURES as error:
            self.error.emit(str(error))
            return
        self._show_task(task)

    def _show_task(self, task: CaseTask | None) -> None:
        self.task = task
        reading = self.session is not None
        self.start_button.setEnabled(not reading)
        self.leave_button.setEnabled(reading)
        self.pause_button.blockSignals(True)  # a new case starts unpaused (a submission ends a pause)
        self.pause_button.setChecked(False)
        self.pause_button.setText("Pause")
        self.pause_button.blockSignals(False)
        self.pause_button.setEnabled(task is not None)
        self.on_screen = self.model_on_screen = False
        self.submit_button.setEnabled(False)
        self.back_button.setEnabled(task is not None and task.may_go_back)
        if self.session is None:
            self.progress.setText("Not reading a study.")
        else:
            try:
                done = self.session.progress()
            except FAILURES as error:
                self.error.emit(str(error))
            else:
                self.progress.setText(f"Read {done.done} / {done.total}")
        if task is None:
            self.case_label.setText("All cases are read. Thank you." if reading else "")
        else:
            shown = "with the model's output" if task.ai is not None else "without the model's output"
            again = " (reading again: this supersedes your earlier reading)" if task.revisiting else ""
            earlier = "".join(
                f"\nYour unaided {side.name.lower()}: {percent(answer.probability)}, BI-RADS {answer.birads}, "
                f"{'recall' if answer.recall else 'no recall'}"
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
