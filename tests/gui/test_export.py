"""File > Export results as DICOM...: the open exam's result written in the background into the
folder chosen (the dialog replaced), disabled without a result, a failure shown in the window."""

from __future__ import annotations

import pydicom
from PySide6.QtWidgets import QFileDialog

from gmic_core.imaging import View


def _choose(monkeypatch, folder) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args: str(folder))


def test_export_writes_the_open_exams_objects(
    qtbot, window, exams_folder, start_and_settle, tmp_path, monkeypatch
):
    assert not window.export_action.isEnabled()  # no result yet
    assert window.export_action in window.menuBar().actions()[0].menu().actions()
    start_and_settle(window, [exams_folder])
    assert window.export_action.isEnabled()
    out = tmp_path / "dicom"
    _choose(monkeypatch, out)
    window.export_action.trigger()
    qtbot.waitUntil(lambda: "DICOM objects" in window.messages.text.text(), timeout=60000)
    names = sorted(path.name.split("_")[0] for path in out.iterdir())
    assert names == ["cad-sr", "measurement-report", "sc", *(f"seg-{view.value}" for view in sorted(View))]
    source = pydicom.dcmread(window.session.images[View.L_CC].mammogram.source, stop_before_pixels=True)
    picture = pydicom.dcmread(next(out.glob("sc_*")), stop_before_pixels=True)
    assert picture.StudyInstanceUID == source.StudyInstanceUID
    assert "NOT FOR CLINICAL USE" in picture.SeriesDescription  # the test model's card says so

    other = next(
        entry.exam for entry in window.worklist.model.entries if entry.exam is not window.session.exam
    )
    window.open_exam(other)
    assert not window.export_action.isEnabled()  # until the other exam's result is shown
    qtbot.waitUntil(window.export_action.isEnabled, timeout=60000)


def test_an_export_that_fails_is_shown_in_the_window(
    qtbot, window, exams_folder, start_and_settle, tmp_path, monkeypatch
):
    start_and_settle(window, [exams_folder])
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")  # a file where the folder should be
    _choose(monkeypatch, blocked)
    window.export_action.trigger()
    qtbot.waitUntil(lambda: "could not be written" in window.messages.text.text(), timeout=60000)
    assert str(blocked) in window.messages.text.text()
