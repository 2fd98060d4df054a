"""Durability: a reading is committed when ``submit`` returns. Killing the process right after a
submission loses nothing; several processes submitting against one PostgreSQL database lose nothing
and create no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from app.store import open_store
from app.store.models import Protocol, Reading
from app.study.cases import CaseSpec
from app.study.service import StudyService
from gmic_core.imaging.views import Laterality

REPO_ROOT = Path(__file__).resolve().parents[2]


def _worker(url: str, study: str, reader: str) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "tests.app.study_worker", url, study, reader],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _create(
    url: str, study: str, cases: int, breasts=(Laterality.LEFT, Laterality.RIGHT), readers=("reader-1",)
) -> None:
    store = open_store(url)
    specs = [CaseSpec(f"exam-{index:04d}", dict.fromkeys(breasts, index % 4 == 0)) for index in range(cases)]
    service = StudyService(store)
    service.create_study(study, specs, Protocol.BLINDED, seed=11)
    for reader in readers:
        service.enrol(study, reader)
    store.dispose()


def test_sigkill_right_after_a_submission_loses_nothing(database_url):
    _create(database_url, "kill", cases=50)
    worker = _worker(database_url, "kill", "reader-1")
    acknowledged: list[int] = []
    try:
        for line in worker.stdout:
            if line.startswith("submitted"):
                acknowledged.extend(int(value) for value in line.split()[2:])
            if len(acknowledged) >= 6:  # three cases, two breasts each
                worker.send_signal(signal.SIGKILL)
                break
    finally:
        worker.kill()
        worker.wait(timeout=60)
    assert worker.returncode == -signal.SIGKILL, worker.stderr.read()
    store = open_store(database_url)
    with store.session() as session:
        stored = session.scalars(select(Reading)).all()
    store.dispose()
    stored_ids = {reading.id for reading in stored}
    assert set(acknowledged) <= stored_ids
    per_case = {}
    for reading in stored:  # whatever was committed is whole: both breasts of a case or neither
        per_case.setdefault(reading.study_case_id, set()).add(reading.laterality)
    assert all(sides == {"L", "R"} for sides in per_case.values())
    resumed = StudyService(open_store(database_url)).open_session("kill", "reader-1")
    assert resumed.progress().done == len(per_case)


def _run_all(workers: list[subprocess.Popen]) -> list[str]:
    lines = []
    for worker in workers:
        out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
        lines.extend(out.splitlines())
    return lines


def test_four_processes_submit_200_readings_each_without_loss_or_duplicates(postgres_url):
    _create(
        postgres_url, "busy", cases=200, breasts=(Laterality.LEFT,), readers=[f"reader-{i}" for i in range(4)]
    )
    workers = [_worker(postgres_url, "busy", f"reader-{index}") for index in range(4)]
    lines = _run_all(workers)
    acknowledged = [int(line.split()[2]) for line in lines if line.startswith("submitted")]
    assert len(acknowledged) == 800
    store = open_store(postgres_url)
    with store.session() as session:
        readings = session.scalars(select(Reading)).all()
    store.dispose()
    assert sorted(reading.id for reading in readings) == sorted(acknowledged)
    keys = {(reading.reader_id, reading.study_case_id, reading.laterality) for reading in readings}
    assert len(keys) == 800
    assert len({reading.reader_id for reading in readings}) == 4


def test_two_processes_racing_for_the_same_reader_store_each_case_once(postgres_url):
    _create(postgres_url, "race", cases=100, breasts=(Laterality.LEFT,))
    workers = [_worker(postgres_url, "race", "reader-1") for _ in range(2)]
    lines = _run_all(workers)
    assert sum(line.startswith("submitted") for line in lines) == 100
    store = open_store(postgres_url)
    with store.session() as session:
        count = session.scalar(select(func.count()).select_from(Reading))
        distinct = session.scalar(select(func.count(func.distinct(Reading.study_case_id))))
    store.dispose()
    assert count == distinct == 100
