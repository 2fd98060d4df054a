"""The reading session: one object, without Qt, that owns what the reader is reading and decides what
of the model they may see (STYLE.md 13, after napari's ``ViewerModel``).

It holds the exam open, the views decoded for it, the model's result for it and whether its analysis
is done, the study case in hand (:class:`app.study.service.CaseTask`) and the exams the reader still
has to read without the model. Every change calls the listeners with a :class:`Change`, so the
workstation (``app.gui``) only draws and forwards input; the rules are testable without a display.

The one blinding rule, :meth:`ReadingSession.model_visible`: while the reader has an exam left to
read unaided in a blinded or sequential study, nothing of the model is shown for that exam anywhere
(overlays, probabilities, patches, worklist scores and flags, DICOM export), in study mode or out of
it, before and after a restart (the list comes from the database). The study case in hand shows the
model exactly when its task says so (``task.ai``), and then only the study model's result.

In study mode no other exam may be opened (:meth:`ReadingSession.refusal_to_open`), and a reading can
be submitted only with the case's views on screen and, in an aided phase, the study model's result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from app.reading.readings import ModelShown
from app.study.service import CaseTask
from gmic_core.imaging import Exam, Laterality, View
from gmic_core.inference import ExamResult


class Change(StrEnum):
    EXAM = "exam"  # another exam is open: no views, no result yet
    VIEWS = "views"  # a view was decoded or failed, or loading finished
    RESULT = "result"  # the result on screen (model_result) changed
    BLINDING = "blinding"  # what may be shown of which exam changed
    TASK = "task"  # the study case in hand changed, or study mode began or ended
    SUBMITTABLE = "submittable"  # whether the case in hand may be submitted now


Listener = Callable[[Change], None]


class ReadingSession:
    def __init__(self, reader: str) -> None:
        self.reader = reader
        self.exam: Exam | None = None
        self.images: dict[View, Any] = {}  # decoded views on screen (app.gui.imagery.DisplayImage)
        self.failed: set[View] = set()
        self.loaded = False  # every view decoded or failed
        self.result: ExamResult | None = None  # the exam's result, shown or not
        self.analysis_done = False  # analysed, taken from the store, or known not to be possible
        self.studying = False  # study mode: a study session is open in the panel
        self.task: CaseTask | None = None
        self.unaided: frozenset[str] = frozenset()  # exams still to be read without the model
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _changed(self, *changes: Change) -> None:
        for change in changes:
            for listener in list(self._listeners):
                listener(change)

    # --- the blinding rule ---------------------------------------------------------------------------

    def model_visible(self, exam_key: str) -> bool:
        """May anything of the model be shown for ``exam_key`` now?"""
        if self.task is not None and exam_key == self.task.exam_key:
            return self.task.ai is not None
        return exam_key not in self.unaided

    @property
    def blinding(self) -> bool:
        """Whether some exam's model output is hidden now (in study mode, always)."""
        return self.studying or bool(self.unaided)

    @property
    def model_result(self) -> ExamResult | None:
        """The result that may be shown for the exam open: None while blinded; in a study's aided
        phase only the study model's."""
        result = self.result
        if result is None or self.exam is None or not self.model_visible(self.exam.exam_id):
            return None
        if self.task is not None and self.task.exam_key == self.exam.exam_id:
            assert self.task.ai is not None
            return result if result.model.key == self.task.ai.model_key else None
        return result

    def model_shown(self, side: Laterality, hybrid_weight: float) -> ModelShown | None:
        """What the reader sees of the model next to their estimate for breast ``side``."""
        result = self.model_result
        breast = None if result is None else result.breasts.get(side)
        return None if breast is None else ModelShown(breast.malignant, hybrid_weight)

    def set_unaided(self, exam_keys: frozenset[str]) -> None:
        """The exams the reader still has to read unaided (``app.study.service.exams_to_read_unaided``)."""
        if exam_keys != self.unaided:
            self.unaided = frozenset(exam_keys)
            self._changed(Change.BLINDING, Change.RESULT)

    # --- the exam --------------------------------------------------------------------------------------

    def refusal_to_open(self, exam_key: str) -> str | None:
        """Why ``exam_key`` may not be opened now (None: it may)."""
        if not self.studying or (self.task is not None and exam_key == self.task.exam_key):
            return None
        where = "" if self.task is None else f" (case {self.task.position + 1} of {self.task.total})"
        return f"You are reading a study{where}: leave the study (Study > Leave study) to open other exams."

    def open(self, exam: Exam) -> None:
        """Show ``exam``; callers check :meth:`refusal_to_open` first."""
        reason = self.refusal_to_open(exam.exam_id)
        if reason is not None:
            raise PermissionError(reason)
        self.exam = exam
        self.images = {}
        self.failed = set()
        self.loaded = False
        self.result = None
        self.analysis_done = False
        self._changed(Change.EXAM, Change.RESULT, Change.SUBMITTABLE)

    def is_open(self, exam_key: str) -> bool:
        return self.exam is not None and self.exam.exam_id == exam_key

    def view_decoded(self, exam_key: str, view: View, image: Any) -> None:
        if self.is_open(exam_key):
            self.images[view] = image
            self._changed(Change.VIEWS)

    def view_failed(self, exam_key: str, view: View) -> None:
        if self.is_open(exam_key):
            self.failed.add(view)
            self._changed(Change.VIEWS)

    def views_loaded(self, exam_key: str, images: Mapping[View, Any]) -> None:
        """Loading ``exam_key`` finished (decoded, failed or cancelled)."""
        if self.is_open(exam_key):
            self.images = dict(images) or self.images
            self.loaded = True
            self._changed(Change.VIEWS, Change.SUBMITTABLE)

    @property
    def views_on_screen(self) -> bool:
        """Every standard view of the exam open is decoded and shown."""
        exam = self.exam
        return exam is not None and self.loaded and bool(exam.images) and set(exam.images) <= set(self.images)

    def set_result(self, result: ExamResult | None) -> None:
        """The model's result for the exam open (whether it may be shown is :attr:`model_result`)."""
        if result is not None and not self.is_open(result.exam_id):
            return
        self.result = result
        self.analysis_done = True
        self._changed(Change.RESULT, Change.SUBMITTABLE)

    def analysis_finished_without_result(self, exam_key: str) -> None:
        if self.is_open(exam_key):
            self.analysis_done = True

    def analyse_again(self) -> bool:
        """Forget that the exam was analysed, so that it is again (not in study mode)."""
        if self.studying or self.exam is None:
            return False
        self.analysis_done = False
        return True

    # --- the study -------------------------------------------------------------------------------------

    def enter_study(self, unaided: frozenset[str]) -> None:
        self.studying = True
        self.unaided = frozenset(unaided)
        self._changed(Change.TASK, Change.BLINDING, Change.RESULT)

    def set_task(self, task: CaseTask | None, unaided: frozenset[str]) -> None:
        """The case to read now (None: all read) and the exams still to read unaided after it."""
        self.task = task
        self.unaided = frozenset(unaided)
        self._changed(Change.TASK, Change.BLINDING, Change.RESULT, Change.SUBMITTABLE)

    def leave_study(self) -> None:
        """Back to the workstation; the exams still to read unaided stay hidden."""
        self.studying = False
        self.task = None
        self._changed(Change.TASK, Change.BLINDING, Change.RESULT, Change.SUBMITTABLE)

    @property
    def may_submit(self) -> bool:
        """The case in hand is on screen, every view of it, and in an aided phase the study model's
        result with it."""
        task = self.task
        if task is None or not self.is_open(task.exam_key) or not self.views_on_screen:
            return False
        return task.ai is None or self.model_result is not None
