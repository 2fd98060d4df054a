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
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32")
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
    outcome = {"code": 0}
    if args.screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
        window.settled.connect(
            lambda _: QTimer.singleShot(300, lambda: _save_screenshot(window, args.screenshot))
        )
        QTimer.singleShot(SCREENSHOT_TIMEOUT_S * 1000, lambda: _give_up(window, outcome))
    else:
        window.resize(1600, 1000)
    window.show()
    window.start(args.paths)
    code = app.exec()
    return outcome["code"] or code


def _save_screenshot(window: MainWindow, path: Path) -> None:
    """Save the window and close it, which ends the application (its last window)."""
    if not window.isVisible():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(path), "PNG")
    print(path)
    window.close()
    QApplication.quit()


def _give_up(window: MainWindow, outcome: dict[str, int]) -> None:
    if window.isVisible():
        print("main.py --screenshot: no exam was ready in time", file=sys.stderr)
        outcome["code"] = 1
        window.close()
        QApplication.quit()
