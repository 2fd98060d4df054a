"""Reading with the mouse and keys: window/level, enlarging a view, linked zoom, the worklist, the
magnifier; the command line (--screenshot) and the demo start; nothing left running after close."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from app.defaults import REPO_ROOT
from app.gui import demo
from app.gui.settings import Settings
from app.gui.window import MainWindow
from gmic_core.imaging import View
from gmic_core.synthetic import SynthesisConfig


def _wheel(widget, steps: int) -> None:
    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(centre.toPoint())),
        QPoint(0, 0),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


class DoubleClick:
    """What pyqtgraph's scene hands a view box on a left double-click."""

    def double(self) -> bool:
        return True

    def button(self) -> Qt.MouseButton:
        return Qt.MouseButton.LeftButton

    def accept(self) -> None:
        pass


def test_window_level_drag_and_presets_change_all_four_views(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    cells = window.viewer.cells
    before = {view: tuple(cell.image_item.levels) for view, cell in cells.items()}
    cells[View.R_CC].window_dragged.emit(0.2, 0.1)
    for view, cell in cells.items():
        low, high = cell.image_item.levels
        assert high - low > before[view][1] - before[view][0], view
    assert window.preset_box.count() == 3  # the synthetic files' NORMAL / HARDER / SOFTER
    window.preset_box.activated.emit(1)
    harder = cells[View.L_CC].voi_for(window.state.window)
    low, high = cells[View.L_CC].image_item.levels
    assert high - low == pytest.approx(harder.width)
    qtbot.keyClick(window, Qt.Key.Key_I)
    assert window.state.window.inverted
    assert cells[View.L_CC].image_item.lut[0] == 255
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert window.state.window.preset == 0
    assert window.state.window.width_scale == 1.0


def test_double_click_enlarges_a_view_and_escape_goes_back(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    cell = window.viewer.cells[View.L_MLO]
    cell.viewbox.mouseClickEvent(DoubleClick())
    assert window.state.enlarged is View.L_MLO
    assert cell.isVisible()
    assert not any(other.isVisible() for view, other in window.viewer.cells.items() if view is not View.L_MLO)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert all(other.isVisible() for other in window.viewer.cells.values())


def test_zoom_is_linked_in_anatomical_terms_and_can_be_unlinked(
    qtbot, window, exams_folder, start_and_settle
):
    start_and_settle(window, [exams_folder])
    right, left = window.viewer.cells[View.R_CC], window.viewer.cells[View.L_CC]
    _wheel(right.viewport(), 3)
    zoom_right, zoom_left = right.current_zoom(), left.current_zoom()
    assert zoom_right.factor > 1.2
    assert zoom_left.factor == pytest.approx(zoom_right.factor, rel=1e-3)
    assert zoom_left.from_chest_wall == pytest.approx(zoom_right.from_chest_wall, abs=1e-3)
    assert zoom_left.from_top == pytest.approx(zoom_right.from_top, abs=1e-3)
    qtbot.keyClick(window, Qt.Key.Key_L)
    assert not window.state.linked
    _wheel(right.viewport(), 2)
    assert left.current_zoom().factor == pytest.approx(zoom_left.factor, rel=1e-3)
    assert right.current_zoom().factor > zoom_right.factor
    # Zoomed in, the image item holds full-resolution pixels covering what is shown ...
    level, top, left_column, bottom, right_column = right._tile
    (x0, x1), (y0, y1) = right.viewbox.viewRange()
    assert level == 0
    assert top <= max(0, y0)
    assert left_column <= max(0, x0)
    assert bottom >= min(right.image.shape[0], y1)
    assert right_column >= min(right.image.shape[1], x1)
    # ... fitted, a coarser level of the pyramid: fewer pixels than the image to re-render.
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert right._tile[0] >= 1
    assert right.image_item.image.size < right.image.pyramid[0].size / 3


def test_worklist_filters_sorts_and_steps_through_exams(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 3)
    worklist = window.worklist
    worklist.table.sortByColumn(1, Qt.SortOrder.AscendingOrder)
    assert [exam.patient.patient_id for exam in worklist.exams_in_order()] == [
        "SYN-5-0000",
        "SYN-5-0001",
        "SYN-5-0002",
    ]
    worklist.filter.setText("0002")
    assert [exam.patient.patient_id for exam in worklist.exams_in_order()] == ["SYN-5-0002"]
    worklist.filter.clear()
    first = worklist.exams_in_order()[0]
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.open_exam(first)
    with qtbot.waitSignal(window.settled, timeout=60000):
        qtbot.keyClick(window, Qt.Key.Key_N)
    assert window.session.exam.patient.patient_id == "SYN-5-0001"
    worklist.table.setFocus()
    worklist.table.selectRow(2)
    with qtbot.waitSignal(window.settled, timeout=60000):
        qtbot.keyClick(worklist.table, Qt.Key.Key_Return)
    assert window.session.exam.patient.patient_id == "SYN-5-0002"


def test_the_magnifier_shows_full_resolution_pixels(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert window.state.magnifier
    cell = window.viewer.cells[View.R_CC]
    centre = cell.viewbox.sceneBoundingRect().center()
    cell.hovered.emit(View.R_CC, centre)
    magnifier = window.viewer.magnifier
    assert magnifier.isVisible()
    assert magnifier.pixmap().width() == min(256, cell.image.shape[1])
    qtbot.keyClick(window, Qt.Key.Key_G)
    assert not magnifier.isVisible()


def test_closing_the_window_stops_every_worker(qtbot, checkpoint, exams_folder, tmp_path):
    window = MainWindow(Settings(data_dir=tmp_path, weights=[checkpoint], device="cpu"))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.analysis_started, timeout=60000):
        window.start([exams_folder])
    window.close()  # while the analysis runs
    assert window.io_pool.active == 0
    assert window.compute_pool.active == 0
    assert window.io_pool._pool.activeThreadCount() == 0
    assert window.compute_pool._pool.activeThreadCount() == 0


def test_screenshot_from_the_command_line(checkpoint, exams_folder, tmp_path):
    """``python main.py ... --screenshot FILE`` in its own process, as a user runs it (an application
    that has quit cannot run event loops again, so not inside the test process)."""
    target = tmp_path / "shot.png"
    command = [
        sys.executable,
        str(REPO_ROOT / "main.py"),
        str(exams_folder),
        "--weights",
        str(checkpoint),
        "--device",
        "cpu",
        "--data-dir",
        str(tmp_path),
        "--db",
        f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "--screenshot",
        str(target),
    ]
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": os.pathsep.join(sys.path)}
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_screenshot_of_an_empty_folder_exits_with_a_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    command = [
        sys.executable,
        str(REPO_ROOT / "main.py"),
        str(empty),
        "--data-dir",
        str(tmp_path),
        "--db",
        f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "--screenshot",
        str(tmp_path / "shot.png"),
    ]
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": os.pathsep.join(sys.path)}
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 1
    assert f"no exam to show in {empty}" in completed.stderr
    assert not (tmp_path / "shot.png").exists()


def test_with_no_exam_the_demo_opens(qtbot, make_window, checkpoint, monkeypatch, start_and_settle):
    monkeypatch.setattr(demo, "DEMO_EXAMS", 2)
    monkeypatch.setattr(demo, "DEMO_SYNTHESIS", SynthesisConfig(size=(1024, 832), malignant_fraction=0.5))
    window = make_window([checkpoint])
    start_and_settle(window, [])
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 2, timeout=60000)
    assert window.session.result is not None
    assert (window.settings.demo_folder / "demo_00" / demo.COMPLETE_MARKER).is_file()
    assert window.settings.db_url.endswith("gmic-reader.sqlite3")
