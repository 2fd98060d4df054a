"""Display speed of the reading workstation on four 4096 x 3328 16-bit views (issue 5/7, item 7).
Targets: under 1 s to show, 20 frames/s or more, under 100 ms per overlay toggle, under 50 ms stall.

* time to show: from opening an exam until all four views are painted (uncompressed files), and
  until each view is painted (JPEG 2000 lossless files, decoded in parallel);
* window/level: frames per second of a right-drag (the lookup of all four views changed and
  repainted, synchronously);
* overlay toggle: hiding or showing the malignant saliency map on all four views, repainted;
* the longest time the GUI thread did not get to run its event loop over all the openings above,
  the first of them with the exam's analysis running beside it. The benchmark's own closing repaint
  of one opening and the next opening's call run back to back, as no reader could make them; the
  gap between them is not counted (the opening's call itself is).

Everything is painted synchronously (``repaint``), so the figures include rendering.

Usage: QT_QPA_PLATFORM=offscreen python -m benchmarks.gui_display_bench [--runs N] [--frames N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

from app.gui.main import configure_pyqtgraph
from app.gui.settings import Settings
from app.gui.state import Overlay
from app.gui.window import MainWindow
from gmic_core.config import GMICConfig
from gmic_core.imaging import Exam, View, load_exam
from gmic_core.inference import ExamResult
from gmic_core.model import GMIC, ModelCard, save_checkpoint
from gmic_core.synthetic import FULL_SIZE, SynthesisConfig, generate_exam, write_image

WINDOW_SIZE = (1600, 1000)
STALL_TICK_MS = 5


def _write_exam(folder: Path, transfer_syntax: str) -> Exam:
    exam = generate_exam(seed=0, index=0, config=SynthesisConfig(size=FULL_SIZE))
    folder.mkdir(parents=True, exist_ok=True)
    for view in View:
        write_image(folder / f"{view.value}.dcm", exam, view, transfer_syntax)
    return load_exam(folder)


def _wait(loop: QEventLoop, done: Callable[[], bool], timeout_s: float = 600.0) -> None:
    """Run the event loop until ``done()``. (QEventLoop.processEvents, not the application's, which
    in PySide6 drops a reference to None on every call.)"""
    deadline = time.perf_counter() + timeout_s
    while not done():
        if time.perf_counter() > deadline:
            raise TimeoutError("the workstation did not get there in time")
        loop.processEvents()
        time.sleep(0.001)


def _repaint(window: MainWindow) -> None:
    for cell in window.viewer.cells.values():
        cell.viewport().repaint()


class StallMeter:
    """The longest gap between ticks of a fast timer on the GUI thread."""

    def __init__(self) -> None:
        self.longest_ms = 0.0
        self._clock = QElapsedTimer()
        self._timer = QTimer()
        self._timer.setInterval(STALL_TICK_MS)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.longest_ms = 0.0
        self._clock.start()
        self._timer.start()

    def _tick(self) -> None:
        self.longest_ms = max(self.longest_ms, self._clock.restart() - STALL_TICK_MS)

    def skip(self) -> None:
        """Start the next gap now: what ran since the last tick was the benchmark's own doing."""
        self._clock.restart()

    def stop(self) -> float:
        self._timer.stop()
        return self.longest_ms


def _open_and_time(
    loop: QEventLoop, window: MainWindow, exam: Exam, stalls: StallMeter
) -> tuple[float, dict[View, float]]:
    """Seconds until all four views are painted, and until each view was shown."""
    shown: dict[View, float] = {}
    stalls.skip()  # the previous opening's closing repaint is not part of this one
    started = time.perf_counter()

    def view_loaded(loaded) -> None:
        if loaded.image is not None:
            window.viewer.cells[loaded.view].viewport().repaint()
            shown[loaded.view] = time.perf_counter() - started

    window.open_exam(exam)
    window._load_worker.signals.partial.connect(view_loaded)
    _wait(loop, lambda: len(shown) == len(View))
    _repaint(window)
    return time.perf_counter() - started, shown


def run(runs: int = 7, frames: int = 60, log: Callable[[str], None] = print) -> dict[str, float]:
    configure_pyqtgraph()
    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive for the run)
    loop = QEventLoop()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        log("writing a full-size synthetic exam (uncompressed and JPEG 2000) ...")
        raw = _write_exam(root / "raw", "explicit-little")
        jpeg2000 = _write_exam(root / "j2k", "jpeg2000-lossless")
        torch.manual_seed(0)
        card = ModelCard(
            "benchmark model (random weights)", "0", "none", "benchmarks only; not for clinical use"
        )
        weights = save_checkpoint(root / "model.pt", GMIC(GMICConfig.at_scale(0.5)).eval(), card)
        window = MainWindow(Settings(data_dir=root / "data", weights=[weights], device="cpu"))
        window.resize(*WINDOW_SIZE)
        window.show()
        window.load_model(window.settings)
        stalls = StallMeter()
        try:
            _wait(loop, lambda: window.predictor is not None)
            stalls.start()
            first_show, _ = _open_and_time(loop, window, raw, stalls)
            _wait(loop, lambda: window.session.result is not None and window._analysis_worker is None)
            log(f"first open (inference running beside it): all four views painted after {first_show:.3f} s")
            show_times, per_view = [], {view: [] for view in View}
            for _ in range(runs):
                for exam, sink in ((raw, show_times), (jpeg2000, None)):
                    total, shown = _open_and_time(loop, window, exam, stalls)
                    if sink is not None:
                        sink.append(total)
                    else:
                        for view, seconds in shown.items():
                            per_view[view].append(seconds)
                    _wait(loop, lambda: window._analysis_worker is None)
            _wait(loop, lambda: window.session.result is not None)
            longest_stall = stalls.stop()
            _repaint(window)
            frame_times = []
            for frame in range(frames):
                started = time.perf_counter()
                step = 0.01 if frame % 40 < 20 else -0.01
                window.state.set_window(window.state.window.dragged(step, step / 2))
                _repaint(window)
                frame_times.append(time.perf_counter() - started)
            toggle_times = []
            for _ in range(2 * runs):
                started = time.perf_counter()
                window.state.toggle_overlay(Overlay.MALIGNANT)
                _repaint(window)
                toggle_times.append(time.perf_counter() - started)
        finally:
            window.close()
    figures = {
        "show_uncompressed_s": statistics.median(show_times),
        **{f"show_jpeg2000_{view.value}_s": statistics.median(times) for view, times in per_view.items()},
        "window_level_fps": 1.0 / statistics.median(frame_times),
        "overlay_toggle_ms": 1000 * statistics.median(toggle_times),
        "longest_gui_stall_ms": longest_stall,
    }
    log(
        f"open an uncompressed exam, all four views painted: median {figures['show_uncompressed_s']:.3f} s of {runs}"
    )
    for view in View:
        log(
            f"open a JPEG 2000 exam, {view.value} painted: median {figures[f'show_jpeg2000_{view.value}_s']:.3f} s"
        )
    log(
        f"window/level drag, four views repainted: median {figures['window_level_fps']:.1f} frames/s of {frames}"
    )
    log(f"overlay toggle, four views repainted: median {figures['overlay_toggle_ms']:.1f} ms of {2 * runs}")
    log(
        f"longest GUI-thread stall over all {2 * runs + 1} openings (the first analysed beside it): "
        f"{longest_stall:.0f} ms"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7, help="exam openings and overlay toggles timed")
    parser.add_argument("--frames", type=int, default=60, help="window/level frames timed")
    args = parser.parse_args()
    run(runs=args.runs, frames=args.frames)


def analyse_once(
    paths: list[Path], weights: list[Path], device: str, timeout_s: float = 120.0
) -> tuple[ExamResult | None, float]:
    """Start the workstation (offscreen where ``QT_QPA_PLATFORM`` says so) on ``paths`` with the model
    on ``device`` and wait until its first exam is shown and analysed: the result (None if the
    analysis could not be done) and the seconds from start; for ``benchmarks/gpu_check.sh``."""
    configure_pyqtgraph()
    app = QApplication.instance() or QApplication([])  # noqa: F841 (kept alive for the run)
    loop = QEventLoop()
    settled: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        window = MainWindow(Settings(data_dir=Path(folder), weights=list(weights), device=device))
        window.show()
        window.settled.connect(settled.append)
        started = time.perf_counter()
        try:
            window.start(paths)
            _wait(loop, lambda: bool(settled), timeout_s)
            return window.session.result, time.perf_counter() - started
        finally:
            window.close()


if __name__ == "__main__":
    main()
