"""The workstation end to end on small synthetic exams: opening, background inference, overlays, the
hybrid score, the patch gallery, a corrupt file, cancellation, the status bar's progress."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from sqlalchemy import select

from app.gui import imagery
from app.gui.imagery import expanded_box
from app.gui.side_panel import percent
from app.gui.state import Overlay
from app.gui.viewer import FOCUS_MINIMUM
from app.gui.workers import Worker
from app.gui.worklist import ExamStatus
from app.reading.readings import hybrid_score
from app.store.models import Reading
from gmic_core.errors import GMICError
from gmic_core.imaging import Laterality, View
from tests.gui.database import the_tests_own
from tests.gui.estimates import give


def test_opening_a_folder_shows_the_four_views_and_the_worklist(
    qtbot, window, exams_folder, start_and_settle
):
    exam_id = start_and_settle(window, [exams_folder])
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 3)
    assert window.session.exam.exam_id == exam_id
    for view, cell in window.viewer.cells.items():
        assert cell.image is not None, view
        assert cell.image_item.image is not None
        assert cell.label.text.startswith(f"{view.laterality.value} {view.position.value}")
    listed = window.worklist.model.entries
    assert {entry.exam.patient.patient_id for entry in listed} == {"SYN-5-0000", "SYN-5-0001", "SYN-5-0002"}
    assert all(entry.exam.patient.patient_id in window.worklist.model._text(entry, 1) for entry in listed)


def test_hanging_protocol_puts_the_chest_walls_at_the_centre_line(
    qtbot, window, exams_folder, start_and_settle
):
    start_and_settle(window, [exams_folder])
    for view, cell in window.viewer.cells.items():
        _rows, columns = cell.image.shape
        (x0, x1), (y0, _) = cell.viewbox.viewRange()
        assert y0 == pytest.approx(0, abs=2)  # tops aligned
        if view.laterality is Laterality.RIGHT:
            assert x1 == pytest.approx(columns, abs=2)  # the chest wall on the right, at the centre line
        else:
            assert x0 == pytest.approx(0, abs=2)
    right, left = window.viewer.cells[View.R_CC], window.viewer.cells[View.L_CC]
    assert right.mapTo(window, QPoint(0, 0)).x() < left.mapTo(window, QPoint(0, 0)).x()


def test_inference_completes_through_the_worker_and_is_cached(qtbot, window, exams_folder, start_and_settle):
    exam_id = start_and_settle(window, [exams_folder])
    result = window.session.result
    assert result is not None
    assert result.exam_id == exam_id
    assert set(result.views) == set(View)
    assert window.cache.get(exam_id, window.predictor.identity.key) is result
    entry = window.worklist.model.entry(exam_id)
    assert entry.status is ExamStatus.ANALYSED
    assert entry.score == pytest.approx(result.malignancy_score)
    right = result.breasts[Laterality.RIGHT]
    assert window.side.breasts[Laterality.RIGHT].malignant.text() == percent(right.malignant)
    assert window.timing_label.text().startswith("last inference:")
    assert "tiny test model" in window.model_label.text()
    assert "CPU" in window.device_label.text()
    assert "demo model" in window.banner.text()  # its card says: not for clinical use

    # Reopening the exam takes the cached result: no new analysis.
    other = next(e.exam for e in window.worklist.model.entries if e.exam.exam_id != exam_id)
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.open_exam(other)
    with qtbot.waitSignal(window.settled, timeout=10000):
        window.open_exam(next(e.exam for e in window.worklist.model.entries if e.exam.exam_id == exam_id))
    assert window.session.result is result


def test_overlays_toggle_with_their_keys(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    cell = window.viewer.cells[View.L_CC]
    # the untrained test model finds every breast normal: one patch inside the breast, in a suspicious
    # breast, to toggle
    result = window.session.result
    view = result.views[View.L_CC]
    left, top, _, _ = imagery.saliency_placement(view).clip
    inside = dataclasses.replace(
        view,
        patch_locations=view.patch_locations[:1],
        patch_outside_image=(False,),
        roi_boxes=((int(top) + 10, int(left) + 10, int(top) + 60, int(left) + 60),),
        attention=(1.0,),
        roi_member=(0,),
    )
    breast = dataclasses.replace(result.breasts[Laterality.LEFT], malignant=0.9)
    cell.set_result(inside, breast)
    assert cell.overlay_items[Overlay.BENIGN].isVisible()
    assert cell.overlay_items[Overlay.MALIGNANT].isVisible()
    assert cell.roi_items
    assert all(item.isVisible() for item in cell.roi_items)
    window.viewer.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert not window.state.overlays[Overlay.BENIGN]
    assert not cell.overlay_items[Overlay.BENIGN].isVisible()
    assert cell.overlay_items[Overlay.MALIGNANT].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_M)
    assert not cell.overlay_items[Overlay.MALIGNANT].isVisible()
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert not any(item.isVisible() for item in cell.roi_items)
    qtbot.keyClick(window, Qt.Key.Key_B)
    assert cell.overlay_items[Overlay.BENIGN].isVisible()
    window.opacity_slider.setValue(20)
    assert cell.overlay_items[Overlay.BENIGN].opacity() == pytest.approx(0.2)
    # What is drawn at a stored pixel is the saliency map upsampled to the stored image (paper
    # section 3.5), on flipped and unflipped views alike.
    assert {cell.result.geometry.flipped for cell in window.viewer.cells.values()} == {False, True}
    for cell in window.viewer.cells.values():
        item = cell.overlay_items[Overlay.MALIGNANT]
        expected = cell.result.saliency_in_stored()[1]
        clip = cell.overlay_clip.rect()
        drawn, wanted = [], []
        for row in range(0, expected.shape[0], 37):
            for column in range(0, expected.shape[1], 41):
                centre = QPointF(column + 0.5, row + 0.5)  # the clip item's coordinates are stored pixels
                local = item.mapFromParent(centre)
                cell_row, cell_column = int(np.floor(local.y())), int(np.floor(local.x()))
                inside = (
                    clip.contains(centre)
                    and 0 <= cell_row < item.image.shape[0]
                    and 0 <= cell_column < item.image.shape[1]
                )
                drawn.append(item.image[cell_row, cell_column] if inside else 0.0)
                wanted.append(expected[row, column])
        np.testing.assert_array_equal(drawn, wanted)
        assert np.count_nonzero(wanted) > 100


def test_lambda_slider_changes_the_hybrid_by_the_formula(qtbot, window, exams_folder, start_and_settle):
    exam_id = start_and_settle(window, [exams_folder])
    box = window.side.breasts[Laterality.RIGHT]
    give(box, 80)
    model = window.session.result.breasts[Laterality.RIGHT].malignant
    for value in (0, 30, 100):
        window.side.weight_slider.setValue(value)
        weight = value / 100
        assert window.state.hybrid_weight == pytest.approx(weight)
        assert box.hybrid.text() == percent(weight * 0.8 + (1 - weight) * model)
    # The estimate is kept: leaving the exam and coming back shows it again.
    reading = window.readings.get(exam_id, Laterality.RIGHT)
    assert reading.probability == pytest.approx(0.8)
    assert box.hybrid.text() == percent(hybrid_score(reading.probability, model, 1.0))
    other = next(e.exam for e in window.worklist.model.entries if e.exam.exam_id != exam_id)
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.open_exam(other)
    assert box.probability.value() == -1  # not set for the other exam
    with qtbot.waitSignal(window.settled, timeout=10000):
        window.open_exam(next(e.exam for e in window.worklist.model.entries if e.exam.exam_id == exam_id))
    assert box.probability.value() == 80
    give(window.side.breasts[Laterality.LEFT], 10)
    assert window.worklist.model.entry(exam_id).status is ExamStatus.READ


def test_clicking_a_patch_centres_and_zooms_its_view(qtbot, window, exams_folder, start_and_settle):
    start_and_settle(window, [exams_folder])
    gallery = window.side.gallery
    assert gallery.count() == sum(len(r.rois) for r in window.session.result.views.values())
    item = gallery.item(gallery.count() - 1)
    view, box = item.data(Qt.ItemDataRole.UserRole)
    cell = window.viewer.cells[view]
    before = cell.viewbox.viewRange()
    gallery.scrollToItem(item)
    rect = gallery.visualItemRect(item)
    qtbot.mouseClick(gallery.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    (x0, x1), (y0, y1) = cell.viewbox.viewRange()
    assert (x1 - x0) < (before[0][1] - before[0][0])  # zoomed in
    # boxes smaller than the focus minimum grow around their centre, inside the image
    top, left, bottom, right = expanded_box(box, FOCUS_MINIMUM, cell.image.shape)
    assert (x0 + x1) / 2 == pytest.approx((left + right) / 2, abs=2)
    assert (y0 + y1) / 2 == pytest.approx((top + bottom) / 2, abs=2)


def test_a_corrupt_file_is_reported_in_the_window_and_the_rest_goes_on(
    qtbot, window, corrupt_exam, exams_folder, start_and_settle
):
    start_and_settle(window, [corrupt_exam])
    broken = window.viewer.cells[View.L_MLO]
    assert broken.image is None
    assert "could not be read" in broken.message.textItem.toPlainText()
    assert window.messages.isVisible()
    assert "L-MLO" in window.messages.text.text()
    assert all(window.viewer.cells[view].image is not None for view in (View.R_CC, View.L_CC, View.R_MLO))
    assert set(window.session.result.views) == {View.R_CC, View.L_CC, View.R_MLO}
    assert window.session.result.breasts[Laterality.LEFT].missing_views == (View.L_MLO,)
    # Still usable: another folder opens and is analysed.
    with qtbot.waitSignal(window.worklist.model.rowsInserted, timeout=30000):
        window.add_paths([exams_folder])
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.open_exam(window.worklist.model.entries[-1].exam)
    assert all(cell.image is not None for cell in window.viewer.cells.values())


def test_a_truncated_file_is_reported_and_its_view_shown_missing(
    qtbot, window, truncated_exam, start_and_settle
):
    start_and_settle(window, [truncated_exam])
    assert window.messages.isVisible()
    assert "R-CC.dcm" in window.messages.text.text()
    assert window.viewer.cells[View.R_CC].message.textItem.toPlainText() == "R-CC: not in this exam"
    assert set(window.session.result.views) == {View.L_CC, View.R_MLO, View.L_MLO}


def test_analysis_can_be_cancelled(qtbot, window, exams_folder, start_and_settle):
    first = start_and_settle(window, [exams_folder])
    qtbot.waitUntil(lambda: window.worklist.model.rowCount() == 3)
    other = next(e.exam for e in window.worklist.model.entries if e.exam.exam_id != first)
    with qtbot.waitSignal(window.analysis_started, timeout=30000) as started:
        window.open_exam(other)
    worker = started.args[0]
    with qtbot.waitSignal(worker.signals.cancelled, timeout=60000):
        window.cancel_work()
    qtbot.waitUntil(lambda: window._analysis_worker is None, timeout=60000)
    assert window.messages.isVisible()
    assert "cancelled" in window.messages.text.text()
    assert window.worklist.model.entry(other.exam_id).status is ExamStatus.NEW
    assert window.session.result is None
    assert window.cache.get(other.exam_id, window.predictor.identity.key) is None
    # The window stays usable: analysing again completes.
    with qtbot.waitSignal(window.settled, timeout=60000):
        window.analyse_again()
    assert window.session.result is not None
    assert window.session.result.exam_id == other.exam_id
    assert window.worklist.model.entry(other.exam_id).status is ExamStatus.ANALYSED


@pytest.mark.parametrize(
    ("ending", "outcome"),
    [(None, "done"), (GMICError("the exam could not be read"), "failed"), (InterruptedError(), "cancelled")],
)
def test_once_work_ends_the_status_bar_says_how_not_its_last_percentage(qtbot, make_window, ending, outcome):
    window = make_window()
    demo_may_end = threading.Event()

    def prepare_demo(context) -> None:
        context.progress("Preparing the demo exams", 2, 6)
        demo_may_end.wait(10)

    def analyse(context) -> None:
        context.progress("Analysing", 1, 1)
        if ending is not None:
            raise ending

    window.run_worker(window.io_pool, Worker("Preparing the demo exams", prepare_demo))
    qtbot.waitUntil(lambda: window.progress_label.text() == "Preparing the demo exams")
    window.run_worker(window.compute_pool, Worker("Analysis", analyse))
    qtbot.waitUntil(lambda: window.compute_pool.idle)
    # the work still running shows its own progress, not the finished analysis' 100 %
    assert window.progress_label.text() == "Preparing the demo exams"
    assert (window.progress.value(), window.progress.maximum()) == (2, 6)
    demo_may_end.set()
    qtbot.waitUntil(lambda: window.io_pool.idle)
    assert window.progress.isHidden()
    assert window.progress_label.text() == "Preparing the demo exams: done"

    window.run_worker(window.compute_pool, Worker("Analysis", analyse))
    qtbot.waitUntil(lambda: window.compute_pool.idle)
    assert window.progress.isHidden()
    assert window.progress_label.text() == f"Analysis: {outcome}"


def test_without_a_model_the_images_are_still_shown(
    qtbot, make_window, exams_folder, start_and_settle, monkeypatch
):
    monkeypatch.setattr("app.gui.chrome.DEMO_MODEL", exams_folder / "absent.pt")
    window = make_window([])
    start_and_settle(window, [exams_folder])
    assert "No model is available" in window.banner.text()
    assert all(cell.image is not None for cell in window.viewer.cells.values())
    assert window.session.result is None
    assert window.side.breasts[Laterality.RIGHT].malignant.text() == "-"


def test_a_broken_checkpoint_is_reported_and_images_stay(
    qtbot, make_window, exams_folder, start_and_settle, tmp_path
):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    window = make_window([broken])
    start_and_settle(window, [exams_folder])
    assert "could not be loaded" in window.banner.text()
    assert not window.messages.isVisible()  # the error once, on the banner, not in a second bar
    assert all(cell.image is not None for cell in window.viewer.cells.values())


def test_typing_85_then_enter_records_exactly_one_reading_of_85(
    qtbot, window, exams_folder, start_and_settle
):
    start_and_settle(window, [exams_folder])
    field = window.side.breasts[Laterality.RIGHT].probability
    field.setFocus()
    field.lineEdit().selectAll()
    qtbot.keyClicks(field.lineEdit(), "85")
    qtbot.keyClick(field.lineEdit(), Qt.Key.Key_Return)
    assert window.persistence.writes.wait(10000)  # recorded by a worker, off the GUI thread
    with the_tests_own(), window.store.session() as session:
        assert [row.probability for row in session.scalars(select(Reading))] == [85.0]
