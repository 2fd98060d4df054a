"""``python main.py [EXAM_OR_FOLDER...] [--weights FILE...] [--db URL] [--screenshot FILE]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.gui.settings import DEMO_MODEL, Settings, default_reader
from app.gui.window import MainWindow
from app.store.database import user_data_dir
from gmic_core.choices import DEFAULT_PRECISION, PRECISION_CHOICES

APPLICATION_NAME = "GMIC Reader"
SCREENSHOT_SIZE = (1800, 1050)
SCREENSHOT_TIMEOUT_S = 900  # the demo's first start writes its exams before the first can open


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="GMIC Reader: the reading workstation. With no exam it opens the embedded demo.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="EXAM_OR_FOLDER",
        help="folders (scanned), DICOM files or exam.json manifests",
    )
    parser.add_argument(
        "--weights", nargs="+", type=Path, metavar="FILE", help=f"checkpoint(s); default: {DEMO_MODEL.name}"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps"
    )
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default=DEFAULT_PRECISION)
    parser.add_argument(
        "--db", metavar="URL", default="", help="database URL (default: SQLite in the data folder)"
    )
    parser.add_argument("--data-dir", type=Path, help="the user's data folder (demo exams, database)")
    parser.add_argument("--reader", help="who records estimates (default: the login name)")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="save the window as PNG once the first exam is analysed, then exit",
    )
    return parser


def configure_pyqtgraph() -> None:
    """Once, before any plot item exists (STYLE.md 10): arrays are (row, column)."""
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    configure_pyqtgraph()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APPLICATION_NAME)
    data_dir = args.data_dir or user_data_dir()
    weights = args.weights if args.weights is not None else ([DEMO_MODEL] if DEMO_MODEL.is_file() else [])
    settings = Settings(
        data_dir=data_dir,
        weights=list(weights),
        device=args.device,
        precision=args.precision,
        db_url=args.db,
        reader=args.reader or default_reader(),
    )
    window = MainWindow(settings)
    screenshot = None
    if args.screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
        screenshot = Screenshot(window, args.screenshot, args.paths)
    else:
        window.resize(1600, 1000)
    window.show()
    window.start(args.paths)
    code = app.exec()
    return (screenshot.code if screenshot is not None else 0) or code


class Screenshot:
    """``--screenshot``: once the window has nothing left to do (the first exam analysed, the
    worklist filled, the demo exams all written), save it and quit; when the work ends with no exam
    open, or none is ready in :data:`SCREENSHOT_TIMEOUT_S`, quit with a message and ``code`` 1.

    Waiting for all the work, not only the first exam, is what lets a screenshot run finish the demo's
    first start instead of cutting it short."""

    POLL_MS = 200

    def __init__(self, window: MainWindow, path: Path, paths: Sequence[Path]) -> None:
        self.window, self.path, self.paths = window, path, paths
        self.code = 0
        self._settled = False
        window.settled.connect(self._on_settled)
        self._timer = QTimer(window)
        self._timer.timeout.connect(self._poll)
        self._timer.start(self.POLL_MS)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, lambda: self._quit("no exam was ready in time"))

    def _on_settled(self, _exam_id: str) -> None:
        self._settled = True

    def _poll(self) -> None:
        window = self.window
        if not all(pool.idle for pool in (window.io_pool, window.compute_pool, window.persistence.writes)):
            return
        if self._settled:
            self._timer.stop()
            QTimer.singleShot(300, self._save)
        elif window.session.exam is None:
            where = ", ".join(str(path) for path in self.paths) or str(window.settings.demo_folder)
            self._quit(f"no exam to show in {where}")

    def _save(self) -> None:
        """Save the window and close it, which ends the application (its last window)."""
        if not self.window.isVisible():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.window.grab().save(str(self.path), "PNG")
        print(self.path)
        self.window.close()
        QApplication.quit()

    def _quit(self, reason: str) -> None:
        if self.window.isVisible():
            print(f"main.py --screenshot: {reason}; no screenshot written", file=sys.stderr)
            self.code = 1
            self._timer.stop()
            self.window.close()
            QApplication.quit()
