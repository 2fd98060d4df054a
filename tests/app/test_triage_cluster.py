"""``gmic triage --ray``: triage on a real Ray cluster of this machine (a head node and a worker node,
one CPU each; see tests/app/ray_cluster.py), against the single-process run on the same exams."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.cli import main
from app.store import open_store
from app.store.models import Exam, ModelRun
from app.store.results import load_exam_result
from app.triage import TriageProgress, find_exams, run_triage
from app.triage import run as triage_run
from gmic_core import synthetic
from tests.app.factories import incoming_with_unusable_files
from tests.app.ray_cluster import LocalCluster, start_cluster

pytest.importorskip("ray.data", reason="the cluster extra: pip install -e '.[cluster]'")

EXAMS = 8


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    cluster = start_cluster(workers=1)
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def exams(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cluster_exams")
    synthetic.write_dataset(folder, exams=EXAMS, seed=5, size=(1024, 832), transfer_syntax="explicit-little")
    return folder


def _scores(store, model_key: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Per exam, each view's fusion prediction, and each exam's count of stored runs as a check."""
    with store.session() as session:
        counts = dict(
            session.execute(
                select(Exam.exam_key, func.count(ModelRun.id))
                .join(ModelRun)
                .where(ModelRun.model_key == model_key)
                .group_by(Exam.exam_key)
            ).all()
        )
        assert set(counts.values()) <= {1}
        results = {key: load_exam_result(session, key, model_key) for key in counts}
    return {key: {view.value: v.y_fusion for view, v in r.views.items()} for key, r in results.items()}


def test_cluster_scores_equal_a_single_process_run(cluster, predictor, weights, exams, tmp_path, capsys):
    single = open_store(f"sqlite:///{tmp_path / 'single.sqlite3'}")
    run_triage(single, predictor, [exams], overlap="none")
    on_ray = open_store(f"sqlite:///{tmp_path / 'ray.sqlite3'}")
    seen: list[TriageProgress] = []
    summary = run_triage(on_ray, predictor, [exams], progress=seen.append, ray_address=cluster.address)
    assert (summary.scored, summary.skipped, summary.failed, summary.cancelled) == (EXAMS, 0, [], False)
    assert [progress.done for progress in seen] == list(range(1, EXAMS + 1))
    assert all(progress.total == EXAMS for progress in seen)
    expected, measured = _scores(single, predictor.identity.key), _scores(on_ray, predictor.identity.key)
    assert sorted(measured) == sorted(expected)
    assert len(measured) == EXAMS
    for key, views in expected.items():
        for view, fusion in views.items():
            np.testing.assert_allclose(measured[key][view], fusion, atol=1e-5, rtol=0)
    on_ray.dispose()
    database = f"sqlite:///{tmp_path / 'ray.sqlite3'}"
    model = ["--weights", str(weights), "--device", "cpu", "--precision", "fp32", "--db", database]
    assert main(["triage", str(exams), *model, "--ray", cluster.address]) == 0
    assert f"0 scored (0 exams/h), {EXAMS} skipped" in capsys.readouterr().err


def test_failures_on_the_cluster_are_stored_with_stage_and_reason(
    cluster, predictor, exams, tmp_path, monkeypatch
):
    folder = incoming_with_unusable_files(exams, tmp_path / "incoming")
    gone = folder / "exam_0001" / "R-MLO.dcm"

    def scan_then_lose_a_file(paths):  # a file that the driver saw and no node can open
        found = find_exams(paths)
        gone.unlink()
        return found

    monkeypatch.setattr(triage_run, "find_exams", scan_then_lose_a_file)
    store = open_store(f"sqlite:///{tmp_path / 'gmic.sqlite3'}")
    summary = run_triage(store, predictor, [folder], ray_address=cluster.address)
    failed = {Path(failure.key).name: failure for failure in summary.failed}
    assert summary.scored == 2
    assert failed["damaged.dcm"].stage == "scan"
    assert "truncated" in failed["damaged.dcm"].error
    assert failed["chest.dcm"].stage == "scan"
    assert "not a breast image" in failed["chest.dcm"].error
    (lost,) = (failure for failure in summary.failed if failure.stage != "scan")
    assert lost.stage == "load"
    assert str(gone) in lost.error
    with store.session() as session:
        from app.store.models import TriageFailure

        stored = {(row.stage, row.exam_id is not None) for row in session.scalars(select(TriageFailure))}
    assert stored == {("scan", False), ("load", True)}


def test_a_killed_worker_node_loses_no_exam_and_scores_none_twice(cluster, predictor, exams, tmp_path):
    """Runs last: it kills the module's worker node (a new one joins for the rest of the run)."""
    store = open_store(f"sqlite:///{tmp_path / 'gmic.sqlite3'}")
    worker = cluster.nodes[-1]

    def kill_the_worker_raylet(progress: TriageProgress) -> None:
        if progress.done == 2:
            os.kill(worker.raylet_pid(), signal.SIGKILL)
            cluster.add_worker()

    try:
        first = run_triage(
            store, predictor, [exams], progress=kill_the_worker_raylet, ray_address=cluster.address
        )
        scored = first.scored
    except Exception as error:  # the run may give up on the lost node: a rerun must resume
        print(f"the run with the killed node failed ({type(error).__name__}); rerunning")
        scored = 0
    rerun = run_triage(store, predictor, [exams], ray_address=cluster.address)
    assert rerun.scored + rerun.skipped == EXAMS
    assert rerun.skipped >= scored
    assert sorted(_scores(store, predictor.identity.key)) == sorted(
        e.exam_id for e in find_exams([exams]).exams
    )
