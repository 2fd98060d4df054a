"""The worklist at the window's default size: the triage columns on screen, and a sort arrow that
points the way the rows run."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt

from app.gui.tasks import find_exams
from app.gui.worklist import FLAGS_COLUMN, SCORE_COLUMN, STATUS_COLUMN, ExamStatus
from app.triage import FLAG_TOP, HIGH_SUSPICION

from .test_display_logic import Context


def _arrow_rows(image, left: int, right: int) -> list[int]:
    """How many dark pixels each row of the header has between ``left`` and ``right``, top to bottom,
    where there are any: the sort arrow's outline when the section holds only the arrow there."""
    pixels = np.array(
        [[image.pixelColor(x, y).lightness() for x in range(left, right)] for y in range(image.height())]
    )
    counts = (pixels < 100).sum(axis=1)
    return [int(count) for count in counts if count]


def test_the_worklist_shows_score_flags_and_status_and_its_arrow_matches_the_order(
    qtbot, make_window, exams_folder
):
    window = make_window()
    window.resize(1600, 1000)  # main.py's default size
    worklist = window.worklist
    for index, exam in enumerate(find_exams(Context(), [exams_folder]).exams):
        worklist.add(exam)
        flags = (HIGH_SUSPICION, FLAG_TOP) if index == 1 else ()
        worklist.model.update(exam.exam_id, ExamStatus.ANALYSED, 0.2 + 0.3 * index, flags)
    qtbot.wait(50)
    table, header = worklist.table, worklist.table.horizontalHeader()
    for column in (0, SCORE_COLUMN, FLAGS_COLUMN, STATUS_COLUMN):
        assert header.sectionViewportPosition(column) >= 0
        assert header.sectionViewportPosition(column) + header.sectionSize(column) <= table.viewport().width()

    scores = [worklist.model.entry(exam.exam_id).score for exam in worklist.exams_in_order()]
    assert scores == sorted(scores, reverse=True)  # it starts with the most suspicious exam
    assert header.sortIndicatorSection() == SCORE_COLUMN

    right = header.sectionViewportPosition(SCORE_COLUMN) + header.sectionSize(SCORE_COLUMN)
    descending = _arrow_rows(header.grab().toImage(), right - 20, right)
    assert descending == sorted(descending, reverse=True)  # a ▼
    assert descending[0] > descending[-1]
    table.sortByColumn(SCORE_COLUMN, Qt.SortOrder.AscendingOrder)
    scores = [worklist.model.entry(exam.exam_id).score for exam in worklist.exams_in_order()]
    assert scores == sorted(scores)
    ascending = _arrow_rows(header.grab().toImage(), right - 20, right)
    assert ascending == sorted(ascending)  # a ▲
    assert ascending[0] < ascending[-1]
