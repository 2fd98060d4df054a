"""The reader-study panel wired to the window: each case the panel's study session hands over enters
the reading session (study mode, what of the model may be shown) and is opened, from the worklist or
from the path the study stored for it, read on the I/O pool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.gui import tasks
from app.gui.workers import Worker
from app.study.service import CaseTask

if TYPE_CHECKING:
    from app.gui.window import MainWindow


class StudyWiring:
    def __init__(self, window: MainWindow) -> None:
        self._window = window
        window.study_panel.task_changed.connect(self._task_changed)
        window.study_panel.left.connect(window.session.leave_study)
        window.study_panel.error.connect(window.messages.show_message)

    def show_panel(self) -> None:
        self._window.study_panel.refresh_studies()
        self._window.study_panel.show()

    def _task_changed(self, task: CaseTask | None) -> None:
        window, panel = self._window, self._window.study_panel
        if panel.session is None:
            return  # left: the panel's left signal ends study mode
        if not window.session.studying:
            window.session.enter_study(panel.unaided)
        window.session.set_task(task, panel.unaided)
        if task is None:
            return
        entry = window.worklist.model.entry(task.exam_key)
        if entry is not None:
            window.open_exam(entry.exam)
        elif task.source:
            worker = Worker("Reading the study case", tasks.find_exams, [Path(task.source)])
            worker.signals.result.connect(lambda report: self._case_found(task, report))
            window.run_worker(window.io_pool, worker)
        else:
            window.messages.show_message(f"The study does not say where case {task.case_key} lies.")

    def _case_found(self, task: CaseTask, report: tasks.ScanReport) -> None:
        window = self._window
        if task is not window.session.task:
            return
        exam = next((exam for exam in report.exams if exam.exam_id == task.exam_key), None)
        if exam is None:
            window.messages.show_message(f"Case {task.case_key} was not found at {task.source}.")
            return
        window.worklist.add(exam)
        window.open_exam(exam)
