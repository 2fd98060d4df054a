"""Fixtures of the workstation tests: small synthetic exams, a tiny seeded checkpoint, a window that
is closed (its workers stopped) after every test, a check that nothing leaks, and one that the
application never opens a database session on the GUI thread."""

from __future__ import annotations

import threading
import traceback
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QThreadPool
from PySide6.QtWidgets import QApplication

from app.gui.main import configure_pyqtgraph
from app.gui.settings import Settings
from app.gui.window import MainWindow
from app.store.database import Store
from gmic_core.config import GMICConfig
from gmic_core.model import GMIC, ModelCard, save_checkpoint
from gmic_core.synthetic import write_dataset
from tests.gui.database import by_the_test

SMALL_EXAM = (1024, 832)
JPEG2000_START_OF_CODESTREAM = b"\xff\x4f\xff\x51"  # SOC and SIZ markers (ISO 15444-1 A.4.1, A.5.1)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A GMIC-ResNet-18 at quarter scale with seeded random weights (fast on two CPU cores). With
    seed 1 every view of the test exams has ROI patches on the image; with seed 0 the published
    selection places nearly all of them in the window's padding, where they have no box."""
    torch.manual_seed(1)
    model = GMIC(GMICConfig.at_scale(0.25)).eval()
    card = ModelCard(
        name="tiny test model",
        version="0",
        training_data="none",
        intended_use="tests only; not for clinical use",
    )
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", model, card)


@pytest.fixture(scope="session")
def exams_folder(tmp_path_factory) -> Path:
    """Three small uncompressed synthetic four-view exams."""
    folder = tmp_path_factory.mktemp("exams")
    write_dataset(
        folder, 3, seed=5, size=SMALL_EXAM, transfer_syntax="explicit-little", malignant_fraction=0.5
    )
    return folder


@pytest.fixture(scope="session")
def corrupt_exam(tmp_path_factory) -> Path:
    """One JPEG 2000 exam whose L-MLO codestream header is zeroed: the file's DICOM header reads
    (so the exam has four views), its pixels cannot be decoded."""
    folder = tmp_path_factory.mktemp("corrupt")
    write_dataset(folder, 1, seed=9, size=SMALL_EXAM, transfer_syntax="jpeg2000-lossless")
    broken = folder / "exam_0000" / "L-MLO.dcm"
    data = bytearray(broken.read_bytes())
    start = data.find(JPEG2000_START_OF_CODESTREAM)
    data[start : start + 200] = bytes(200)
    broken.write_bytes(bytes(data))
    return folder / "exam_0000"


@pytest.fixture(scope="session")
def truncated_exam(tmp_path_factory) -> Path:
    """One exam whose R-CC file is cut in half: the scan refuses it, the other three views remain."""
    folder = tmp_path_factory.mktemp("truncated")
    write_dataset(folder, 1, seed=10, size=SMALL_EXAM, transfer_syntax="explicit-little")
    broken = folder / "exam_0000" / "R-CC.dcm"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    return folder / "exam_0000"


@pytest.fixture
def make_window(qtbot, tmp_path):
    """``make_window(weights=[...])``: a shown MainWindow on its own data folder; closed, with its
    worker threads stopped, at teardown."""
    configure_pyqtgraph()
    windows: list[MainWindow] = []

    def make(weights: list[Path] | None = None) -> MainWindow:
        window = MainWindow(Settings(data_dir=tmp_path / "data", weights=list(weights or []), device="cpu"))
        window.resize(1400, 900)
        qtbot.addWidget(window)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        assert window.io_pool.active == 0
        assert window.compute_pool.active == 0
        assert window.persistence.writes.active == 0


@pytest.fixture
def window(make_window, checkpoint):
    return make_window([checkpoint])


@pytest.fixture(autouse=True)
def no_leaks(qapp):
    """After each test: no top-level window left open, no thread still running on the global pool."""
    yield
    QApplication.processEvents()
    assert QThreadPool.globalInstance().waitForDone(5000)
    visible = [widget for widget in QApplication.topLevelWidgets() if widget.isVisible()]
    assert not visible, f"widgets left open: {visible}"


@pytest.fixture(autouse=True)
def no_database_on_the_gui_thread(monkeypatch):
    """Every database session the application opens on the GUI thread (Qt's, the main thread) fails
    the test: the session factory raises, and the teardown reports it even where a caller swallowed
    the error. Database work belongs in workers (app/gui/persistence.py)."""
    open_session = Store.session
    offences: list[str] = []

    def session_off_the_gui_thread(store: Store):
        if threading.current_thread() is threading.main_thread() and not by_the_test():
            offences.append("".join(traceback.format_stack(limit=12)))
            raise AssertionError("the database was queried on the GUI thread")
        return open_session(store)

    monkeypatch.setattr(Store, "session", session_off_the_gui_thread)
    yield
    assert not offences, "the database was queried on the GUI thread:\n" + "\n".join(offences)


@pytest.fixture
def start_and_settle(qtbot):
    """``start_and_settle(window, paths)``: start the window and wait until its first exam is shown
    and analysed; returns the exam id."""

    def start(window: MainWindow, paths: list[Path]) -> str:
        with qtbot.waitSignal(window.settled, timeout=60000) as blocker:
            window.start(paths)
        return blocker.args[0]

    return start
