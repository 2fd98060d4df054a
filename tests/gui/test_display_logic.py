"""The Qt-free logic behind the workstation: pyramids, window/level lookups, view state, readings,
the result cache, the demo exams and finding exams on disk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.gui import demo
from app.gui.decoding import decode_shared
from app.gui.imagery import (
    NORMAL_BELOW,
    apply_lookup,
    build_pyramid,
    display_lookup,
    expanded_box,
    prepare_display,
    roi_marks,
    saliency_placement,
    thumbnail,
    views_by_suspicion,
)
from app.gui.state import Overlay, ViewerState, WindowAdjustment
from app.gui.tasks import find_exams
from app.reading.book import MemoryResultCache, ReadingBook
from app.reading.readings import Estimate, hybrid_score
from gmic_core.imaging import Laterality, Mammogram, View, VoiLut, Window, decode_view
from gmic_core.imaging.image import OrientationSource
from gmic_core.imaging.voi import VoiFunction
from gmic_core.synthetic import SynthesisConfig
from tests.app.factories import fake_exam_result


class Context:
    """The TaskContext of a task run outside a worker."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.partials: list = []
        self.progress_calls = 0
        self._cancel_after = cancel_after

    def cancelled(self) -> bool:
        return self._cancel_after is not None and len(self.partials) >= self._cancel_after

    def progress(self, message: str, done: int, total: int) -> None:
        self.progress_calls += 1

    def partial(self, value) -> None:
        self.partials.append(value)


def test_pyramid_levels_are_block_means_down_to_the_top_size():
    pixels = np.arange(2048 * 1664, dtype=np.uint16).reshape(2048, 1664) % 4096
    levels = build_pyramid(pixels, top=512)
    assert [level.shape for level in levels] == [(2048, 1664), (1024, 832), (512, 416)]
    assert all(level.dtype == np.uint16 for level in levels)
    block = pixels[:2, :2].astype(np.uint32)
    assert levels[1][0, 0] == block.sum() // 4


@pytest.mark.parametrize(
    "voi",
    [
        Window(2000, 1000),
        Window(2000, 1000, VoiFunction.LINEAR_EXACT),
        Window(2000, 600, VoiFunction.SIGMOID),
        VoiLut(1000, np.linspace(0, 4095, 2048).astype(np.uint16), 12),
    ],
)
def test_the_lookup_displays_as_the_dicom_voi_does(voi):
    levels, table = display_lookup(voi, WindowAdjustment())
    values = np.linspace(0, 4095, 5000)
    expected = np.clip(voi.apply(values), 0, 1) * 255
    assert np.abs(apply_lookup(values, levels, table).astype(float) - expected).max() <= 2.5


def test_the_reader_adjustment_widens_moves_and_inverts():
    voi = Window(2000, 1000)
    (low, high), _table = display_lookup(voi, WindowAdjustment(width_scale=2.0, level_shift=0.1))
    assert (high - low) == pytest.approx(2000)
    assert (low + high) / 2 == pytest.approx(2100)
    _, inverted = display_lookup(voi, WindowAdjustment(inverted=True))
    np.testing.assert_array_equal(inverted, 255 - display_lookup(voi, WindowAdjustment())[1])
    dragged = WindowAdjustment().dragged(0.25, -0.1)
    assert dragged.width_scale > 1
    assert dragged.level_shift < 0


def test_small_boxes_grow_inside_the_image():
    assert expanded_box((10, 10, 10, 10), 32, (100, 100)) == (0, 0, 26, 26)
    assert expanded_box((40, 40, 80, 90), 32, (100, 100)) == (40, 40, 80, 90)


def test_patch_thumbnails_come_from_a_coarser_level_that_looks_the_same():
    rows, columns = np.mgrid[0:1024, 0:832]
    pixels = (rows * 3 + columns * 2).astype(np.uint16)  # smooth: block means change nothing but detail
    mammogram = Mammogram(None, pixels, Window(2000.0, 4000.0), False, OrientationSource.AS_STORED)
    image = prepare_display(View.L_CC, mammogram)
    box = (300, 200, 556, 456)  # a 256-pixel patch: level 1 still has 128 pixels across it
    coarse = thumbnail(image, box, 96).astype(int)
    full = thumbnail(dataclasses.replace(image, pyramid=image.pyramid[:1]), box, 96).astype(int)
    assert coarse.shape == full.shape == (96, 96)
    assert np.abs(coarse - full).max() <= 2
    assert coarse[0, 0] < coarse[-1, -1]  # oriented as the image: rows down, columns right


def test_viewer_state_tells_its_listeners_what_changed():
    state = ViewerState()
    changes: list[str] = []
    unsubscribe = state.subscribe(changes.append)
    state.toggle_overlay(Overlay.BENIGN)
    state.set_opacity(0.3)
    state.set_opacity(0.3)  # no change, no call
    state.set_hybrid_weight(0.7)
    state.toggle_inverted()
    unsubscribe()
    state.set_linked(False)
    assert changes == ["overlays", "opacity", "hybrid_weight", "window"]
    assert not state.overlays[Overlay.BENIGN]
    with pytest.raises(ValueError, match="lambda"):
        state.set_hybrid_weight(1.5)


def test_readings_are_kept_per_exam_and_breast_and_make_the_hybrid():
    book = ReadingBook()
    book.set_probability("a", Laterality.LEFT, 0.9)
    book.set_birads("a", Laterality.LEFT, 4)
    assert book.get("a", Laterality.LEFT) == Estimate(0.9, 4)
    assert book.get("a", Laterality.RIGHT) == Estimate()
    assert book.get("b", Laterality.LEFT) == Estimate()
    assert not book.is_read("a", (Laterality.LEFT, Laterality.RIGHT))
    book.set_probability("a", Laterality.RIGHT, 0.1)
    assert book.is_read("a", (Laterality.LEFT, Laterality.RIGHT))
    assert hybrid_score(0.9, 0.5, 0.25) == pytest.approx(0.25 * 0.9 + 0.75 * 0.5)
    assert hybrid_score(None, 0.5, 0.25) is None
    with pytest.raises(ValueError, match="BI-RADS"):
        Estimate(birads=7)


def test_the_book_records_each_new_estimate_and_fills_in_stored_ones_not_given_since():
    recorded = []
    book = ReadingBook(lambda *reading: recorded.append(reading))
    book.set_birads("a", Laterality.LEFT, 4)  # no probability yet: kept, not recorded
    book.set_probability("a", Laterality.LEFT, 0.3)
    book.set_probability("a", Laterality.LEFT, 0.3)  # the same again (Enter, then leaving the field)
    assert recorded == [("a", Laterality.LEFT, Estimate(0.3, 4), None)]
    stored = {Laterality.LEFT: Estimate(0.9), Laterality.RIGHT: Estimate(0.1, 2)}
    assert book.fill("a", stored) == [Laterality.RIGHT]
    assert book.get("a", Laterality.LEFT) == Estimate(0.3, 4)  # given in this session: newer
    assert book.get("a", Laterality.RIGHT) == Estimate(0.1, 2)
    assert len(recorded) == 1  # what came from the store is not recorded again


def test_the_cache_is_keyed_by_exam_and_model(tmp_path):
    class Identity:
        key = "weights-a|fp32|tta0"

    class Result:
        exam_id = "exam-1"
        model = Identity()

    cache = MemoryResultCache()
    result = Result()
    cache.put(result)
    assert cache.get("exam-1", "weights-a|fp32|tta0") is result
    assert cache.get("exam-1", "weights-b|fp32|tta0") is None
    assert cache.get("exam-2", "weights-a|fp32|tta0") is None


def test_demo_exams_are_written_once_and_reported_as_they_land(tmp_path):
    small = SynthesisConfig(size=(256, 208), malignant_fraction=0.5, benign_fraction=0.5)
    context = Context()
    exams = demo.prepare_demo_exams(context, tmp_path, exams=2, synthesis=small)
    assert [exam.exam_id for exam in context.partials] == [exam.exam_id for exam in exams]
    assert all(len(exam.images) == 4 for exam in exams)
    written = {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*.dcm")}
    again = demo.prepare_demo_exams(Context(), tmp_path, exams=2, synthesis=small)
    assert [exam.exam_id for exam in again] == [exam.exam_id for exam in exams]
    assert {path: path.stat().st_mtime_ns for path in tmp_path.rglob("*.dcm")} == written
    with pytest.raises(InterruptedError):
        demo.prepare_demo_exams(Context(cancel_after=1), tmp_path / "other", exams=2, synthesis=small)


def test_an_interrupted_demo_start_is_completed_by_the_next(tmp_path):
    small = SynthesisConfig(size=(256, 208), malignant_fraction=0.5, benign_fraction=0.5)
    with pytest.raises(InterruptedError):
        demo.prepare_demo_exams(Context(cancel_after=1), tmp_path, exams=3, synthesis=small)
    (tmp_path / "demo_01").mkdir()  # an exam cut short while its views were written
    (tmp_path / "demo_01" / "R-CC.dcm").write_bytes(b"half")
    first = {path: path.stat().st_mtime_ns for path in (tmp_path / "demo_00").glob("*.dcm")}
    exams = demo.prepare_demo_exams(Context(), tmp_path, exams=3, synthesis=small)
    assert [len(exam.images) for exam in exams] == [4, 4, 4]
    assert all((tmp_path / f"demo_{index:02d}" / demo.COMPLETE_MARKER).is_file() for index in range(3))
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "demo_00").glob("*.dcm")} == first


def test_finding_exams_reports_bad_paths_and_goes_on(tmp_path, exams_folder):
    (tmp_path / "empty").mkdir()
    report = find_exams(Context(), [tmp_path / "absent", tmp_path / "empty", exams_folder])
    assert len(report.exams) == 3
    reasons = " ".join(reason for _, reason in report.failures)
    assert "absent" in reasons
    assert "no mammograms found" in reasons


def test_the_workstation_opens_a_single_file(exams_folder):
    file = exams_folder / "exam_0000" / "L-CC.dcm"
    report = find_exams(Context(), [file])
    assert [list(exam.images) for exam in report.exams] == [[View.L_CC]]
    assert report.failures == []


def test_a_view_decoded_in_a_worker_comes_back_through_shared_memory(exams_folder):
    exam = find_exams(Context(), [exams_folder]).exams[0]
    view = next(iter(exam.images))
    shared = decode_shared(exam, view)  # what a decoding process returns: the layout, not the pixels
    assert shared.path.exists()
    assert shared.mammogram.pixels.size == 0
    image = shared.open()
    assert not shared.path.exists()  # the name is gone at once; the mapping stays valid
    expected = prepare_display(view, decode_view(exam, view))
    assert len(image.pyramid) == len(expected.pyramid)
    for level, wanted in zip(image.pyramid, expected.pyramid, strict=True):
        np.testing.assert_array_equal(level, wanted)
        assert level.dtype == wanted.dtype
    assert image.mammogram.pixels is image.pyramid[0]
    assert image.mammogram.voi == expected.mammogram.voi


def test_spin_arrows_give_one_estimate_once_they_rest(qtbot):
    """Five arrow clicks in quick succession are one estimate, the last value, given SETTLE_MS after
    the last click; a click after that is one more (a superseding reading)."""
    from app.gui.side_panel import SETTLE_MS, BreastBox

    box = BreastBox(Laterality.LEFT)
    qtbot.addWidget(box)
    given: list[Estimate] = []
    box.reading_entered.connect(lambda side, estimate: given.append(estimate))
    box.probability.setValue(40)
    qtbot.waitUntil(lambda: len(given) == 1, timeout=5 * SETTLE_MS)  # setting up: a value at rest
    given.clear()
    for _ in range(5):
        box.probability.stepBy(1)
    assert given == []
    qtbot.waitUntil(lambda: len(given) == 1, timeout=5 * SETTLE_MS)
    assert given[0].probability == pytest.approx(0.45)
    qtbot.wait(SETTLE_MS + 200)
    assert len(given) == 1
    box.probability.stepBy(1)
    qtbot.waitUntil(lambda: len(given) == 2, timeout=5 * SETTLE_MS)
    assert given[1].probability == pytest.approx(0.46)


def test_roi_boxes_are_clipped_to_the_breast_labelled_once_and_hidden_in_a_normal_breast():
    result = fake_exam_result("exam", seed=3, malignant={Laterality.LEFT: 0.9, Laterality.RIGHT: 0.01})
    view = result.views[View.L_CC]
    left, top, width, height = saliency_placement(view).clip
    view = dataclasses.replace(
        view,
        roi_boxes=(
            (int(top) + 100, int(left) + 100, int(top) + 356, int(left) + 356),  # inside
            (int(top) - 128, int(left) + 500, int(top) + 128, int(left) + 756),  # half above the breast
            (int(top + height), int(left) + 100, int(top + height) + 256, int(left) + 356),  # outside
            (int(top) + 900, int(left) + 900, int(top) + 900, int(left) + 1156),  # zero area
            (int(top) + 400, int(left) + 400, int(top) + 656, int(left) + 656),
            (int(top) + 420, int(left) + 420, int(top) + 676, int(left) + 676),  # overlaps the last
        ),
        attention=(0.1, 0.3, 0.2, 0.05, 0.15, 0.2),
    )
    marks = roi_marks(view, result.breasts[Laterality.LEFT])
    assert [mark.box[0] for mark in marks] == [int(top) + 100, top, int(top) + 400, int(top) + 420]
    for mark in marks:
        assert top <= mark.box[0] < mark.box[2] <= top + height
        assert left <= mark.box[1] < mark.box[3] <= left + width
    assert [mark.label for mark in marks] == [None, "0.30", None, None]  # only the strongest
    low = dataclasses.replace(result.breasts[Laterality.RIGHT], benign=NORMAL_BELOW / 2)
    assert roi_marks(result.views[View.R_CC], low) == ()


def test_the_patch_gallery_starts_with_the_more_suspicious_breast():
    result = fake_exam_result("exam", seed=4, malignant={Laterality.LEFT: 0.8, Laterality.RIGHT: 0.1})
    assert views_by_suspicion(result) == [View.L_CC, View.L_MLO, View.R_CC, View.R_MLO]
    result = fake_exam_result("exam", seed=4, malignant={Laterality.LEFT: 0.1, Laterality.RIGHT: 0.8})
    assert views_by_suspicion(result) == [View.R_CC, View.R_MLO, View.L_CC, View.L_MLO]
