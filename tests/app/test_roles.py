"""Database roles on a password-protected PostgreSQL, checked from outside the application: what a
reader's login role may read and write, what the coordinator's may, and that the database (not the
application) refuses the rest."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import cli
from app.reading.readings import Estimate
from app.store import StoreError, open_store
from app.store.database import PermissionDeniedError
from app.store.models import Phase, Protocol
from app.store.results import save_exam_result
from app.store.roles import grant_coordinator, grant_reader
from app.study.cases import CaseSpec
from app.study.service import CaseTask, ReaderSession, StudyService
from gmic_core.imaging.views import Laterality
from tests.app.conftest import _admin_connect
from tests.app.factories import IDENTITY, fake_exam_result

L, R = Laterality.LEFT, Laterality.RIGHT
CASES = [CaseSpec(f"exam-{index}", {L: index < 2, R: False}) for index in range(4)]
ESTIMATES = {L: Estimate(0.7, 4, True), R: Estimate(0.1, 1, False)}


@dataclass(frozen=True)
class Roles:
    owner: str  # the URL that ran the migrations
    coordinator: str
    reader: str  # reader "ann"
    other_reader: str  # reader "bob"
    names: dict[str, str]  # role -> login name


def _as(url: str, name: str, password: str) -> str:
    return make_url(url).set(username=name, password=password).render_as_string(hide_password=False)


@pytest.fixture
def roles(postgres_url, tmp_path) -> Iterator[Roles]:
    suffix = uuid.uuid4().hex[:8]
    names = {"coordinator": f"coord_{suffix}", "reader": f"ann_{suffix}", "other_reader": f"bob_{suffix}"}
    password = uuid.uuid4().hex
    grant_coordinator(postgres_url, names["coordinator"], password)
    grant_reader(postgres_url, names["reader"], password)
    grant_reader(postgres_url, names["other_reader"], password)
    yield Roles(
        postgres_url, **{role: _as(postgres_url, name, password) for role, name in names.items()}, names=names
    )
    with _admin_connect(postgres_url) as admin:
        for name in names.values():
            admin.execute(f'DROP ROLE IF EXISTS "{name}"')


def _study(roles: Roles, protocol: Protocol = Protocol.BLINDED) -> None:
    """The coordinator stores the model's results and creates the study."""
    store = open_store(roles.coordinator)
    with store.session() as session:
        for index, case in enumerate(CASES):
            save_exam_result(session, fake_exam_result(case.case_key, seed=index, malignant={L: 0.3, R: 0.2}))
    service = StudyService(store)
    washout = 0.0 if protocol is Protocol.CROSSOVER else None
    service.create_study("pilot", CASES, protocol, seed=3, model_key=IDENTITY.key, washout_days=washout)
    service.enrol("pilot", roles.names["reader"])
    service.enrol("pilot", roles.names["other_reader"])
    store.dispose()


def _read_one(url: str, reader: str) -> None:
    store = open_store(url)
    session = StudyService(store).open_session("pilot", reader)
    session.submit(session.current(), ESTIMATES, model_shown=True)
    store.dispose()


def _rows(url: str, query: str) -> list:
    store = open_store(url)
    try:
        with store.session() as session:
            return list(session.execute(text(query)))
    finally:
        store.dispose()


def test_a_wrong_password_is_refused(roles):
    with pytest.raises(StoreError, match="password authentication failed"):
        open_store(_as(roles.reader, roles.names["reader"], "not-the-password"))
    with pytest.raises(StoreError, match="password authentication failed"):
        open_store(make_url(roles.owner).set(password="wrong").render_as_string(hide_password=False))


def test_a_reader_reads_its_cases_and_adds_only_its_own_readings(roles):
    _study(roles)
    ann, bob = roles.names["reader"], roles.names["other_reader"]
    _read_one(roles.reader, ann)
    _read_one(roles.other_reader, bob)
    assert len(_rows(roles.reader, "SELECT case_key FROM study_cases")) == len(CASES)
    store = open_store(roles.reader)
    session = StudyService(store).open_session("pilot", ann)
    assert [reading.laterality for reading in session.my_readings()] == [L, R]
    assert session.current().position == 1
    store.dispose()
    # Only ann's own readings and reader row are visible to her, whatever she asks for.
    assert len(_rows(roles.reader, "SELECT * FROM readings")) == 2
    assert [name for (name,) in _rows(roles.reader, "SELECT name FROM readers")] == [ann]
    [(bob_id, exam_id)] = _rows(
        roles.owner,
        f"SELECT reader_id, exam_id FROM readings JOIN readers r ON r.id = reader_id WHERE name = '{bob}'",
    )[:1]
    with pytest.raises(PermissionDeniedError, match="row-level security"):
        _rows(
            roles.reader,
            "INSERT INTO readings (submission_key, reader_id, exam_id, laterality, phase, revision, "
            "probability, recall, ai_shown, started_at, submitted_at, duration_s) VALUES "
            f"('forged', {bob_id}, {exam_id}, 'L', 'unaided', 9, 5, false, false, now(), now(), 0)",
        )


REFUSED = (
    "SELECT * FROM ground_truth",
    "UPDATE readings SET probability = 99",
    "DELETE FROM readings",
    "TRUNCATE readings",
    "UPDATE study_cases SET breasts = 'L'",
    "DELETE FROM assignments",
    "INSERT INTO ground_truth (study_case_id, laterality, malignant) VALUES (1, 'R', true)",
    "SELECT * FROM triage_runs",
)


def test_the_database_refuses_a_reader_the_truth_and_every_change(roles):
    _study(roles)
    _read_one(roles.reader, roles.names["reader"])
    for statement in REFUSED:
        with pytest.raises(PermissionDeniedError, match="coordinator's role"):
            _rows(roles.reader, statement)
    assert len(_rows(roles.owner, "SELECT * FROM readings")) == 2
    assert len(_rows(roles.owner, "SELECT * FROM ground_truth")) == 2 * len(CASES)


def test_a_reader_cannot_produce_the_study_report(roles, tmp_path, capsys):
    _study(roles)
    _read_one(roles.reader, roles.names["reader"])
    assert cli.main(["study", "report", "pilot", "--db", roles.reader, "--out", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert "coordinator's role" in error
    assert "ground_truth" in error


def test_the_model_is_visible_to_a_reader_only_where_the_protocol_shows_it(roles):
    _study(roles, Protocol.SEQUENTIAL)
    ann = roles.names["reader"]
    store = open_store(roles.reader)
    session = StudyService(store).open_session("pilot", ann)
    task = session.current()
    count = "SELECT count(*) FROM model_runs JOIN breast_predictions ON model_run_id = model_runs.id"
    assert _rows(roles.reader, count) == [(0,)]
    session.submit(task, ESTIMATES, model_shown=False)
    aided = session.current()
    assert aided.ai is not None
    assert aided.ai.scores[L] == pytest.approx(0.3)
    assert _rows(roles.reader, count) == [(2,)]  # the case read unaided, and no other
    assert _rows(roles.other_reader, count) == [(0,)]
    assert _rows(roles.coordinator, count) == [(2 * len(CASES),)]
    store.dispose()


def _every_case(roles: Roles) -> Iterator[tuple[str, ReaderSession, CaseTask]]:
    """Each reader's session, case by case to the end: (the reader's URL, the session, the task); the
    caller submits each task."""
    for url, name in (
        (roles.reader, roles.names["reader"]),
        (roles.other_reader, roles.names["other_reader"]),
    ):
        store = open_store(url)
        session = StudyService(store).open_session("pilot", name)
        try:
            while (task := session.current()) is not None:
                yield url, session, task
        finally:
            store.dispose()


def test_a_crossover_reader_sees_the_model_in_the_aided_session_only_in_either_arm(roles):
    _study(roles, Protocol.CROSSOVER)
    seen: dict[str, dict[Phase, set[bool]]] = {roles.reader: {}, roles.other_reader: {}}
    for url, session, task in _every_case(roles):
        visible = _rows(
            url,
            "SELECT count(*) FROM model_runs JOIN exams ON exams.id = model_runs.exam_id "
            f"WHERE exams.exam_key = '{task.exam_key}'",
        )
        seen[url].setdefault(task.phase, set()).add(visible == [(1,)])
        session.submit(task, ESTIMATES, model_shown=task.ai is not None)
    assert list(seen.values()) == [{Phase.UNAIDED: {False}, Phase.AIDED: {True}}] * 2
    first_phases = _rows(
        roles.owner,
        "SELECT DISTINCT r.name, g.phase FROM readings g JOIN readers r ON r.id = g.reader_id "
        "WHERE g.id IN (SELECT min(id) FROM readings GROUP BY reader_id)",
    )
    assert {phase for _name, phase in first_phases} == {"unaided", "aided"}  # both arms were read


def test_the_coordinator_runs_the_study_workflow(roles, tmp_path, capsys):
    _study(roles, Protocol.AI_ASSISTED)
    for _url, session, task in _every_case(roles):
        truth = task.case_key in ("exam-0", "exam-1")
        left = Estimate(0.9, 4, True) if truth else Estimate(0.2, 2, False)
        session.submit(task, {L: left, R: Estimate(0.1, 1, False)}, model_shown=True)
    out = tmp_path / "report"
    assert cli.main(["study", "report", "pilot", "--db", roles.coordinator, "--out", str(out)]) == 0
    assert (out / "analysis.json").is_file()
    assert "modality" in capsys.readouterr().out


def test_roles_are_refused_clearly_where_there_are_none(tmp_path, capsys):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    url = f"sqlite:///{tmp_path / 'gmic.sqlite3'}"
    assert cli.main(["db", "grant-reader", "ann", "--password-file", str(password), "--db", url]) == 2
    assert "SQLite is single-user" in capsys.readouterr().err
    assert (
        cli.main(["db", "grant-coordinator", "pg_admin", "--password-file", str(password), "--db", url]) == 2
    )
    assert "reserved" in capsys.readouterr().err


def test_an_existing_role_that_is_not_a_reader_is_left_alone(roles, tmp_path, capsys):
    password = tmp_path / "password"
    password.write_text("s3cret\n")
    coordinator = roles.names["coordinator"]
    args = ["db", "grant-reader", coordinator, "--password-file", str(password), "--db", roles.owner]
    assert cli.main(args) == 2
    assert "is not a gmic_reader role" in capsys.readouterr().err
    owner = make_url(roles.owner).username
    args = ["db", "grant-coordinator", owner, "--password-file", str(password), "--db", roles.owner]
    assert cli.main(args) == 2
