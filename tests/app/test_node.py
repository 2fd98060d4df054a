"""The DICOM node against a real PACS: ``gmic listen`` receiving from dcmtk's storescu and sending its
results to Orthanc (started by .ci/orthanc), ``gmic pacs find`` / ``get`` over DIMSE and DICOMweb,
and the faults of issue 3/7: a SIGKILL mid-exam, the PACS down while results are due, concurrent
senders, a calling AE not allowed, objects that cannot be scored."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pydicom
import pytest
import torch
from pydicom.uid import generate_uid
from pynetdicom.presentation import build_context
from pynetdicom.sop_class import Verification
from sqlalchemy import func, select

from app.cli import main
from app.node.config import NodeConfig, PacsNode, Tls, parse_address, read_nodes, resolve_node, write_nodes
from app.node.query import DimseSource
from app.node.sender import SendError, StoreDestination, association
from app.store import open_store
from app.store.models import Exam, ModelRun, TriageFailure
from gmic_core import synthetic
from gmic_core.config import GMICConfig
from gmic_core.model import GMIC, ModelCard, save_checkpoint
from tests.app.node_servers import ListenProcess, Orthanc, echo, make_certificates, storescu, wait_for
from tests.core import dicom_factory

# Generous bounds for a shared 2-core machine; each wait ends as soon as its condition holds.
RESULT_TIMEOUT_S = 120.0
QUIET_S = "1.5"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """An untrained GMIC at an eighth of the published input size, seeded."""
    torch.manual_seed(0)
    card = ModelCard("tiny seeded", "0", "none", "tests")
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "tiny.pt", GMIC(GMICConfig.at_scale(0.125)), card
    )


@pytest.fixture(scope="module")
def exams(tmp_path_factory) -> list[list[Path]]:
    """Six small synthetic four-view exams, uncompressed (storescu proposes them as they are)."""
    folder = tmp_path_factory.mktemp("node_exams")
    synthetic.write_dataset(folder, exams=6, seed=11, size=(512, 416), transfer_syntax="explicit-little")
    return [sorted(exam.glob("*.dcm")) for exam in sorted(folder.glob("exam_*"))]


@pytest.fixture
def listener(tmp_path, weights, orthanc):
    """``gmic listen`` sending to the Orthanc, allowing the modality MODALITY only."""
    node = ListenProcess(
        tmp_path / "store",
        f"sqlite:///{tmp_path / 'node.sqlite3'}",
        weights,
        [
            "--send-to",
            orthanc.address,
            "--quiet-seconds",
            QUIET_S,
            "--allow",
            "MODALITY",
            "--retry-max-seconds",
            "1",
        ],
    )
    node.start()
    yield node
    node.stop()


def _study_uid(files: list[Path]) -> str:
    return str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _runs(db_url: str, study_uid: str) -> int:
    store = open_store(db_url)
    try:
        with store.session() as session:
            return session.scalar(
                select(func.count(ModelRun.id)).join(Exam).where(Exam.exam_key == study_uid)
            )
    finally:
        store.dispose()


def _results_in(orthanc: Orthanc, study_uid: str) -> dict[str, int]:
    """Orthanc's instances of the study by modality."""
    counts: dict[str, int] = {}
    for tags in orthanc.study_instances(study_uid):
        counts[tags["Modality"]] = counts.get(tags["Modality"], 0) + 1
    return counts


def _all_results(orthanc: Orthanc, study_uid: str) -> dict[str, int] | None:
    counts = _results_in(orthanc, study_uid)
    # the CAD SR and the TID 1500 report (SR), one Segmentation per view, the Secondary Capture (OT)
    return counts if counts.get("SR") == 2 and counts.get("SEG") == 4 and counts.get("OT") == 1 else None


def test_flow_modality_to_listener_to_orthanc_then_find_and_get(listener, orthanc, exams, tmp_path, capsys):
    exam = exams[0]
    study = _study_uid(exam)
    sent = storescu("MODALITY", "GMIC", *listener.address, exam)
    assert sent.returncode == 0, sent.stderr
    assert sorted(path.name for path in (listener.store / "studies" / study).iterdir()) == sorted(
        f"{pydicom.dcmread(file, stop_before_pixels=True).SOPInstanceUID}.dcm" for file in exam
    )
    counts = wait_for(lambda: _all_results(orthanc, study), RESULT_TIMEOUT_S, "the results in Orthanc")
    assert counts == {"SR": 2, "SEG": 4, "OT": 1}
    assert _runs(listener.db_url, study) == 1
    # Orthanc lists an object before the listener has its C-STORE response, marks the study sent and
    # clears its outbox
    wait_for(
        lambda: (listener.store / "sent" / study).exists() and not any((listener.store / "outbox").iterdir()),
        RESULT_TIMEOUT_S,
        "the study marked sent and its outbox cleared",
    )

    # the modality also archives the exam in the PACS; find it and bring it back
    assert storescu("MODALITY", "ORTHANC", "127.0.0.1", str(orthanc.dicom_port), exam).returncode == 0
    for where in (["--pacs", orthanc.address], ["--dicomweb", orthanc.dicomweb]):
        assert main(["pacs", "find", *where, "--calling-ae", "GMIC", "--format", "json"]) == 0
        found = json.loads(capsys.readouterr().out)
        assert [row["study_uid"] for row in found] == [study]
        assert found[0]["modalities"].split("\\").count("MG") == 1
    total = sum(counts.values()) + len(exam)
    ways = {
        "c-get": ["--pacs", orthanc.address],
        "c-move": ["--pacs", orthanc.address, "--move-port", str(orthanc.move_port)],
        "wado": ["--dicomweb", orthanc.dicomweb],
    }
    for name, where in ways.items():
        out = tmp_path / name
        assert main(["pacs", "get", study, *where, "--calling-ae", "GMIC", "--out", str(out)]) == 0
        assert len(list(out.glob("*.dcm"))) == total, name
        assert {pydicom.dcmread(file).StudyInstanceUID for file in out.glob("*.dcm")} == {study}
        assert f"{total} instances received, 0 already present" in capsys.readouterr().err
    # resumable: a retrieval cut short fetches only what is missing
    for file in sorted((tmp_path / "c-get").glob("*.dcm"))[:3]:
        file.unlink()
    assert (
        main(
            [
                "pacs",
                "get",
                study,
                "--pacs",
                orthanc.address,
                "--calling-ae",
                "GMIC",
                "--out",
                str(tmp_path / "c-get"),
            ]
        )
        == 0
    )
    assert f"3 instances received, {total - 3} already present" in capsys.readouterr().err
    # cancelled after two instances: the association is aborted, what arrived stays, getting resumes
    source, folder, done = DimseSource(parse_address(orthanc.address), "GMIC"), tmp_path / "cancelled", []
    with pytest.raises(InterruptedError):
        source.get(study, folder, lambda received, _: done.append(received), lambda: len(done) >= 2)
    kept = len(list(folder.glob("*.dcm")))
    assert kept >= 2
    resumed = source.get(study, folder)
    assert (resumed.received, resumed.skipped) == (total - kept, kept)


def test_sigkill_mid_exam_then_restart_scores_once(listener, orthanc, exams):
    exam = exams[1]
    study = _study_uid(exam)
    assert storescu("MODALITY", "GMIC", *listener.address, exam[:2]).returncode == 0
    listener.stop(signal.SIGKILL)
    assert len(list((listener.store / "studies" / study).iterdir())) == 2  # every acknowledged instance
    listener.start()
    assert storescu("MODALITY", "GMIC", *listener.address, exam[2:]).returncode == 0
    wait_for(lambda: _all_results(orthanc, study), RESULT_TIMEOUT_S, "the results in Orthanc")
    listener.stop(signal.SIGKILL)
    listener.start()  # a restart after everything was sent sends nothing again
    wait_for(lambda: not list((listener.store / "pending").iterdir()), RESULT_TIMEOUT_S, "nothing pending")
    assert _runs(listener.db_url, study) == 1
    assert len(list((listener.store / "studies" / study).iterdir())) == 4
    assert _all_results(orthanc, study) == {"SR": 2, "SEG": 4, "OT": 1}


def test_results_wait_for_a_stopped_pacs(listener, orthanc, exams):
    exam = exams[2]
    study = _study_uid(exam)
    orthanc.stop()
    try:
        assert storescu("MODALITY", "GMIC", *listener.address, exam).returncode == 0
        wait_for(lambda: _runs(listener.db_url, study), RESULT_TIMEOUT_S, "the exam scored")
        wait_for(
            lambda: list((listener.store / "outbox").glob(f"{study}/*.dcm")),
            RESULT_TIMEOUT_S,
            "results queued",
        )
    finally:
        orthanc.start()
    wait_for(
        lambda: _all_results(orthanc, study), RESULT_TIMEOUT_S, "the results in Orthanc after its restart"
    )
    assert _runs(listener.db_url, study) == 1


def test_results_by_stow_rs(tmp_path, weights, orthanc, exams):
    """``--stow``: the results reach Orthanc's DICOMweb plugin, checked through its REST API."""
    node = ListenProcess(
        tmp_path / "store",
        f"sqlite:///{tmp_path / 'node.sqlite3'}",
        weights,
        ["--stow", orthanc.dicomweb, "--quiet-seconds", QUIET_S, "--retry-max-seconds", "1"],
    )
    node.start()
    try:
        exam = exams[4]
        study = _study_uid(exam)
        assert storescu("MODALITY", "GMIC", *node.address, exam).returncode == 0
        counts = wait_for(lambda: _all_results(orthanc, study), RESULT_TIMEOUT_S, "the STOW-RS results")
        assert counts == {"SR": 2, "SEG": 4, "OT": 1}
        wait_for(
            lambda: (node.store / "sent" / study).exists() and not any((node.store / "outbox").iterdir()),
            RESULT_TIMEOUT_S,
            "the study marked sent and its outbox cleared",
        )
    finally:
        node.stop()


def _tls_echo(tls: Tls | None, host: str, port: str) -> bool:
    """A C-ECHO from pynetdicom with ``tls`` (None: a plain association)."""
    node = PacsNode("listener", "GMIC", host, int(port), None, tls)
    try:
        assoc = association(node, "MODALITY", [build_context(Verification)], "C-ECHO")
    except SendError:
        return False
    try:
        return getattr(assoc.send_c_echo(), "Status", None) == 0
    finally:
        assoc.release()


def test_listen_over_tls_requires_a_client_certificate(tmp_path, weights, exams):
    """``--tls-cert/--tls-key/--tls-ca``: a client with a certificate of the CA stores over TLS (the
    sender's own TLS side); a plain client and a TLS client without a certificate are refused."""
    pki = make_certificates(tmp_path / "pki")
    client = Tls(pki["ca.pem"], pki["client.pem"], pki["client.key"])
    tls_options = ["--tls-cert", str(pki["server.pem"]), "--tls-key", str(pki["server.key"])]
    node = ListenProcess(
        tmp_path / "store",
        f"sqlite:///{tmp_path / 'node.sqlite3'}",
        weights,
        [*tls_options, "--tls-ca", str(pki["ca.pem"]), "--quiet-seconds", "600"],
        probe=lambda host, port: _tls_echo(client, host, port),
    )
    node.start()
    try:
        exam = exams[5]
        accepted: list[Path] = []
        listener = PacsNode("listener", "GMIC", *node.address[:1], int(node.port), None, client)
        StoreDestination(listener, "MODALITY").send(exam, accepted.append)
        assert accepted == exam
        stored = sorted(path.name for path in (node.store / "studies" / _study_uid(exam)).iterdir())
        assert len(stored) == len(exam)
        assert not echo("MODALITY", *node.address)  # dcmtk without TLS
        assert not _tls_echo(None, *node.address)
        assert not _tls_echo(Tls(pki["ca.pem"]), *node.address)  # TLS, but no client certificate
        refused = storescu("MODALITY", "GMIC", *node.address, exam[:1])
        assert refused.returncode != 0
    finally:
        node.stop()


def test_a_calling_ae_not_allowed_is_rejected(listener, exams):
    assert echo("MODALITY", *listener.address)
    assert not echo("INTRUDER", *listener.address)
    refused = storescu("INTRUDER", "GMIC", *listener.address, exams[3][:1])
    assert refused.returncode != 0
    assert not list((listener.store / "studies").iterdir())


def test_objects_that_cannot_be_scored_are_in_the_failure_list(listener, tmp_path):
    """A non-image object (a Basic Text SR) and a corrupt image (no Rows) are stored, not analysed,
    and recorded with their reason."""
    image = dicom_factory.relabelled(dicom_factory.dataset(), StudyInstanceUID=generate_uid(), Rows=None)
    corrupt = dicom_factory.save(image, tmp_path / "corrupt.dcm")
    report = pydicom.Dataset()
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.SOPClassUID = report.file_meta.MediaStorageSOPClassUID = pydicom.uid.BasicTextSRStorage
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.StudyInstanceUID, report.SeriesInstanceUID = generate_uid(), generate_uid()
    report.Modality, report.PatientID = "SR", "NODE-TEST"
    non_image = dicom_factory.save(report, tmp_path / "report.dcm")
    assert storescu("MODALITY", "GMIC", *listener.address, [corrupt, non_image]).returncode == 0
    stored = {
        str(listener.store / "studies" / str(ds.StudyInstanceUID) / f"{ds.SOPInstanceUID}.dcm")
        for ds in (image, report)
    }

    def failures():
        store = open_store(listener.db_url)
        try:
            with store.session() as session:
                rows = {row.path: row.error for row in session.scalars(select(TriageFailure))}
        finally:
            store.dispose()
        return rows if set(rows) >= stored else None

    recorded = wait_for(failures, RESULT_TIMEOUT_S, "both objects in the failure list")
    reasons = [recorded[path] for path in sorted(stored)]
    assert all(reasons)
    assert any("Rows" in reason for reason in reasons)
    assert any("image" in reason.lower() for reason in reasons if "Rows" not in reason)


def test_four_concurrent_senders_of_a_hundred_instances(tmp_path, weights):
    """4 storescu x 100 instances at once: all stored, none lost or duplicated; SIGTERM ends the node."""
    template = dicom_factory.dataset()
    batches = []
    for sender in range(4):
        folder = tmp_path / f"sender{sender}"
        folder.mkdir()
        study = generate_uid()
        batches.append(
            [
                dicom_factory.save(
                    dicom_factory.relabelled(template, StudyInstanceUID=study), folder / f"{n}.dcm"
                )
                for n in range(100)
            ]
        )
    node = ListenProcess(
        tmp_path / "store", f"sqlite:///{tmp_path / 'node.sqlite3'}", weights, ["--quiet-seconds", "600"]
    )
    node.start()
    try:
        import subprocess

        senders = [
            subprocess.Popen(
                ["storescu", "-aet", "MODALITY", "-aec", "GMIC", *node.address, *map(str, batch)]
            )
            for batch in batches
        ]
        assert [sender.wait(180) for sender in senders] == [0, 0, 0, 0]
        assert node.process is not None
        node.stop()
        received = {}
        for batch in batches:
            study = str(pydicom.dcmread(batch[0], stop_before_pixels=True).StudyInstanceUID)
            received[study] = sorted(path.stem for path in (tmp_path / "store" / "studies" / study).iterdir())
        expected = {
            str(pydicom.dcmread(batch[0]).StudyInstanceUID): sorted(
                str(pydicom.dcmread(file, stop_before_pixels=True).SOPInstanceUID) for file in batch
            )
            for batch in batches
        }
        assert received == expected
        assert sorted(path.name for path in (tmp_path / "store" / "pending").iterdir()) == sorted(expected)
    finally:
        node.stop(signal.SIGKILL)


def test_the_nodes_file_round_trips(tmp_path):
    config = NodeConfig(
        "READER1",
        {
            "archive": PacsNode("archive", "ORTHANC", "10.0.0.5", 4242, "https://pacs/dicom-web"),
            "secure": PacsNode(
                "secure",
                "SECURE",
                "pacs.example",
                2762,
                None,
                Tls(Path("/ca.pem"), Path("/c.pem"), Path("/k.pem")),
            ),
        },
    )
    path = write_nodes(config, tmp_path / "pacs.toml")
    assert read_nodes(path) == config
    assert resolve_node("archive", config) == config.nodes["archive"]
    assert resolve_node("X@127.0.0.1:104", config).port == 104
    assert read_nodes(tmp_path / "absent.toml") == NodeConfig()
