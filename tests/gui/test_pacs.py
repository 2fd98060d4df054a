"""The workstation and the DICOM node against a real Orthanc (tests/app/node_servers.py): File > Open
from PACS finds a study, retrieves it in the background and opens it; Settings > PACS nodes writes
the nodes file; the worklist shows what ``gmic listen`` scored into the same database."""

from __future__ import annotations

from pathlib import Path

import pydicom
from sqlalchemy import func, select

from app.gui import pacs_dialog
from app.gui.settings import Settings
from app.gui.window import MainWindow
from app.node.config import NodeConfig, PacsNode, read_nodes, write_nodes
from app.store import open_store
from app.store.models import ModelRun
from app.triage import worklist
from gmic_core.imaging import View
from tests.app.node_servers import ListenProcess, storescu, wait_for
from tests.gui.database import the_tests_own

TIMEOUT_MS = 90000


def _header(files: list[Path]):
    return pydicom.dcmread(files[0], stop_before_pixels=True)


def test_open_from_pacs_finds_retrieves_and_opens_the_exam(qtbot, window, orthanc, exams_folder):
    files = sorted((exams_folder / "exam_0001").glob("*.dcm"))
    header = _header(files)
    assert storescu("GMIC", "ORTHANC", "127.0.0.1", str(orthanc.dicom_port), files).returncode == 0
    node = PacsNode("archive", "ORTHANC", "127.0.0.1", orthanc.dicom_port)
    write_nodes(NodeConfig("GMIC", {"archive": node}), pacs_dialog.nodes_file(window))

    dialog = pacs_dialog.open_from_pacs(window)
    try:
        assert dialog.node.currentText() == "archive"
        dialog.patient_id.setText(str(header.PatientID))
        with qtbot.waitSignal(dialog.studies_found, timeout=30000) as found:
            assert dialog.search() is not None, dialog.status.text()
        assert found.args == [1]
        assert dialog.rows[0].study_uid == header.StudyInstanceUID
        qtbot.waitUntil(dialog.retrieve_button.isEnabled)  # the search worker has finished
        with qtbot.waitSignal(window.settled, timeout=TIMEOUT_MS) as settled:
            dialog.retrieve()
        assert window.session.exam is not None
        assert settled.args == [window.session.exam.exam_id]
        assert set(window.session.images) == set(View)
        assert window.worklist.model.entry(window.session.exam.exam_id) is not None
        qtbot.waitUntil(lambda: dialog._worker is None, timeout=TIMEOUT_MS)
        folder = window.settings.data_dir / "pacs" / str(header.StudyInstanceUID)
        assert len(list(folder.glob("*.dcm"))) == len(files)
        assert dialog.status.text().startswith("Retrieved: 1 exams")
    finally:
        dialog.close()


def test_the_nodes_dialog_writes_the_nodes_file(qtbot, tmp_path):
    path = tmp_path / "pacs.toml"
    dialog = pacs_dialog.NodesDialog(path)
    qtbot.addWidget(dialog)
    dialog.calling_ae.setText("READER1")
    dialog.name.setText("archive")
    dialog.ae_title.setText("ORTHANC")
    dialog.host.setText("10.0.0.5")
    dialog.port.setValue(4242)
    dialog.dicomweb.setText("https://pacs.example/dicom-web")
    dialog.save()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert read_nodes(path) == NodeConfig(
        "READER1",
        {"archive": PacsNode("archive", "ORTHANC", "10.0.0.5", 4242, "https://pacs.example/dicom-web")},
    )
    again = pacs_dialog.NodesDialog(path)
    qtbot.addWidget(again)
    assert again.host.text() == "10.0.0.5"
    again.ae_title.setText("bad\\title")
    again.save()
    assert "not an AE title" in again.status.text()
    assert read_nodes(path).nodes["archive"].ae_title == "ORTHANC"


def test_the_worklist_shows_what_gmic_listen_scored(qtbot, tmp_path, checkpoint, exams_folder):
    """An exam received and scored by ``gmic listen`` appears with its stored score in the worklist
    of a workstation on the same database and model; the workstation does not score it again."""
    db_url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    node = ListenProcess(tmp_path / "store", db_url, checkpoint, ["--quiet-seconds", "1"])
    node.start()
    try:
        files = sorted((exams_folder / "exam_0002").glob("*.dcm"))
        study = str(_header(files).StudyInstanceUID)
        assert storescu("MODALITY", "GMIC", *node.address, files).returncode == 0
        store = open_store(db_url)

        def runs() -> int:
            with the_tests_own(), store.session() as session:
                return session.scalar(select(func.count(ModelRun.id)))

        try:
            wait_for(runs, TIMEOUT_MS / 1000, "the exam scored by gmic listen")
        finally:
            store.dispose()
    finally:
        node.stop()
    window = MainWindow(
        Settings(data_dir=tmp_path / "data", weights=[checkpoint], device="cpu", db_url=db_url)
    )
    qtbot.addWidget(window)
    try:
        window.load_model(window.settings)
        qtbot.waitUntil(lambda: window.predictor is not None, timeout=TIMEOUT_MS)
        window.add_paths([node.store / "studies" / study])

        def scored():
            entries = window.worklist.model.entries
            return len(entries) == 1 and entries[0].score is not None

        qtbot.waitUntil(scored, timeout=TIMEOUT_MS)
        entry = window.worklist.model.entries[0]
        assert entry.exam.exam_id == study
        store = open_store(db_url)
        try:
            with the_tests_own(), store.session() as session:
                assert session.scalar(select(func.count(ModelRun.id))) == 1
                stored = worklist(session, window.predictor.identity.key)
            assert [(row.exam_id, row.score) for row in stored] == [(study, entry.score)]
        finally:
            store.dispose()
    finally:
        window.close()
