"""The store on SQLite and PostgreSQL: schema by migrations, SQLite settings, the model-result
repository, and immutable readings."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from app.store import StoreError, open_store
from app.store.database import (
    alembic_config,
    create_database_engine,
    current_revision,
    default_database_url,
    head_revision,
    upgrade,
)
from app.store.models import (
    Base,
    Exam,
    Exclusion,
    Image,
    ImmutableReadingError,
    ModelRun,
    Phase,
    Protocol,
    Reader,
    Reading,
    SaliencyMap,
    Study,
)
from app.store.results import ensure_exam, load_exam_result, save_exam_result
from gmic_core.imaging.views import Laterality, View
from tests.app.factories import IDENTITY, fake_exam_result


def test_migrations_build_exactly_the_models(database_url):
    engine = create_database_engine(database_url)
    assert inspect(engine).get_table_names() == []
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    assert differences == []
    engine.dispose()


def test_migrations_downgrade_and_upgrade_again(database_url):
    engine = create_database_engine(database_url)
    upgrade(engine)
    command.downgrade(alembic_config(engine), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert "readings" in inspect(engine).get_table_names()
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'nested' / 'gmic.sqlite3'}")
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with pytest.raises(DBAPIError, match="FOREIGN KEY"), store.session() as session:
        session.execute(text("INSERT INTO images (exam_id, path) VALUES (999, 'x.dcm')"))
    store.dispose()


def test_default_database_lives_in_the_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GMIC_DATA_DIR", str(tmp_path / "data"))
    assert default_database_url() == f"sqlite:///{tmp_path / 'data' / 'gmic-reader.sqlite3'}"
    store = open_store()
    assert (tmp_path / "data" / "gmic-reader.sqlite3").is_file()
    store.dispose()


def test_bad_or_unreachable_databases_raise_store_errors(tmp_path):
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")
    with pytest.raises(StoreError, match="cannot reach"):
        open_store("postgresql+psycopg://nobody@127.0.0.1:9/nothing?connect_timeout=2")


def _assert_same_result(stored, expected):
    assert stored.to_json() == expected.to_json()
    for view, result in expected.views.items():
        assert stored.views[view].saliency.dtype == np.float32
        assert stored.views[view].saliency.tobytes() == result.saliency.tobytes()


def test_exam_results_round_trip_exactly(store):
    result = fake_exam_result("exam-1", seed=3)
    with store.session() as session:
        run = save_exam_result(session, result)
        assert run.model_key == IDENTITY.key
    with store.session() as session:
        stored = load_exam_result(session, "exam-1", IDENTITY.key)
        assert load_exam_result(session, "exam-1", "another model") is None
        assert load_exam_result(session, "exam-2", IDENTITY.key) is None
    _assert_same_result(stored, result)
    assert stored.model == IDENTITY
    assert stored.timings == {"preprocess": 0.25, "forward": 1.5}


def test_the_latest_run_of_a_model_wins_and_saliency_is_compressed(store):
    with store.session() as session:
        save_exam_result(session, fake_exam_result("exam-1", seed=1))
        save_exam_result(session, fake_exam_result("exam-1", seed=2))
    with store.session() as session:
        stored = load_exam_result(session, "exam-1", IDENTITY.key)
        blobs = session.scalars(select(SaliencyMap.data)).all()
        assert len(session.scalars(select(Exam)).all()) == 1
        assert len(session.scalars(select(ModelRun)).all()) == 1  # one run per exam and model
    _assert_same_result(stored, fake_exam_result("exam-1", seed=2))
    assert len(blobs) == 4
    assert all(len(blob) < 2 * 46 * 30 * 4 for blob in blobs)


def test_a_result_with_one_breast_keeps_the_other_absent(store):
    result = fake_exam_result("exam-1")
    views = {view: r for view, r in result.views.items() if view.laterality is Laterality.LEFT}
    partial = type(result)("exam-1", views, {Laterality.LEFT: result.breasts[Laterality.LEFT]}, IDENTITY, {})
    with store.session() as session:
        save_exam_result(session, partial)
    with store.session() as session:
        stored = load_exam_result(session, "exam-1", IDENTITY.key)
    assert stored.to_json()["breasts"]["R"] is None
    _assert_same_result(stored, partial)


def _a_reading(store) -> int:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    with store.session() as session:
        exam = ensure_exam(session, "exam-1")
        reader = Reader(name="reader-1")
        session.add(reader)
        session.flush()
        reading = Reading(
            submission_key="k",
            reader_id=reader.id,
            exam_id=exam.id,
            laterality="L",
            phase="unaided",
            revision=0,
            probability=40.0,
            recall=False,
            ai_shown=False,
            started_at=now,
            submitted_at=now,
            duration_s=0.0,
        )
        session.add(reading)
        session.flush()
        return reading.id


BAD_VALUES = (
    "INSERT INTO triage_runs (model_key, model_names, device, paths, status, scored, skipped, failed, "
    "started_at) VALUES ('m', '[]', 'cpu', '[]', 'done', 0, 0, 0, CURRENT_TIMESTAMP)",
    "INSERT INTO study_cases (study_id, exam_id, case_key, breasts) VALUES ({study}, {exam}, 'c', 'RL')",
    "INSERT INTO images (exam_id, view, path) VALUES ({exam}, 'R-ML', 'x.dcm')",
    "INSERT INTO studies (name, protocol, seed, hybrid_weight, require_assessment, confirm_submit, created_at) "
    "VALUES ('s', 'open', 1, 0.5, true, true, CURRENT_TIMESTAMP)",
    "INSERT INTO readings (submission_key, reader_id, exam_id, laterality, phase, revision, probability, "
    "ai_shown, started_at, submitted_at, duration_s) VALUES ('b', {reader}, {exam}, 'L', 'later', 0, 5, "
    "false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)",
    "INSERT INTO readings (submission_key, reader_id, exam_id, laterality, phase, revision, probability, "
    "ai_shown, started_at, submitted_at, duration_s) VALUES ('b', {reader}, {exam}, 'B', 'aided', 0, 5, "
    "false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)",
)


def test_the_database_refuses_values_outside_a_vocabulary(store):
    reading_id = _a_reading(store)
    with store.session() as session:
        reading = session.get_one(Reading, reading_id)
        assert (reading.laterality, reading.phase) == (Laterality.LEFT, Phase.UNAIDED)
        session.add(study := Study(name="s", protocol=Protocol.BLINDED, seed=1))
        session.flush()
        ids = {"exam": reading.exam_id, "reader": reading.reader_id, "study": study.id}
    for statement in BAD_VALUES:
        with pytest.raises(IntegrityError, match="ck_"), store.session() as session:
            session.execute(text(statement.format(**ids)))
    with pytest.raises(StatementError, match="R-ML"), store.session() as session:
        session.add(Image(exam_id=ids["exam"], view="R-ML", path="y.dcm"))


def test_an_upgrade_from_0006_keeps_a_populated_database(database_url):
    engine = create_database_engine(database_url)
    upgrade(engine, "0006_studies")
    with engine.begin() as connection:
        for statement in POPULATED_0006:
            connection.execute(text(statement))
    upgrade(engine)
    engine.dispose()
    store = open_store(database_url)
    with store.session() as session:
        first, second = session.scalars(select(Reading).order_by(Reading.id))
        assert (first.recall, second.supersedes_id, second.phase) == (False, first.id, Phase.AIDED)
        assert session.scalar(select(Study.protocol)) is Protocol.CROSSOVER
        assert session.scalar(select(Image.view)) is View.L_MLO
        assert session.scalar(select(Exclusion.reading_id)) == first.id
        session.execute(
            text(READING_0006.format(id=3, phase="aided", revision=2, supersedes=2, recall="NULL"))
        )
        assert session.get_one(Reading, 3).recall is None
    with pytest.raises(DBAPIError, match="immutable"), store.session() as session:
        session.execute(text("DELETE FROM readings"))
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(
            text(
                "INSERT INTO study_exclusions (study_id, reader_id, reason, excluded_at) "
                "VALUES (99, 1, 'no such study', CURRENT_TIMESTAMP)"
            )
        )
    store.dispose()


READING_0006 = (
    "INSERT INTO readings (id, submission_key, study_id, reader_id, exam_id, study_case_id, laterality, phase, "
    "revision, supersedes_id, probability, recall, ai_shown, started_at, submitted_at, duration_s) VALUES "
    "({id}, 'k{id}', 1, 1, 1, 1, 'L', '{phase}', {revision}, {supersedes}, 40, {recall}, false, "
    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
)
POPULATED_0006 = (
    "INSERT INTO exams (id, exam_key, created_at) VALUES (1, 'exam-1', CURRENT_TIMESTAMP)",
    "INSERT INTO images (exam_id, view, path) VALUES (1, 'L-MLO', 'a.dcm')",
    "INSERT INTO readers (id, name, created_at) VALUES (1, 'ann', CURRENT_TIMESTAMP)",
    "INSERT INTO studies (id, name, protocol, seed, hybrid_weight, washout_days, require_assessment, "
    "confirm_submit, created_at) VALUES (1, 's', 'crossover', 1, 0.5, 1, true, true, CURRENT_TIMESTAMP)",
    "INSERT INTO study_cases (id, study_id, exam_id, case_key, breasts) VALUES (1, 1, 1, 'exam-1', 'L')",
    "INSERT INTO ground_truth (study_case_id, laterality, malignant) VALUES (1, 'L', true)",
    READING_0006.format(id=1, phase="unaided", revision=0, supersedes="NULL", recall="false"),
    READING_0006.format(id=2, phase="aided", revision=1, supersedes=1, recall="false"),
    "INSERT INTO study_exclusions (study_id, reading_id, reason, excluded_at) "
    "VALUES (1, 1, 'test', CURRENT_TIMESTAMP)",
)


def test_submitted_readings_cannot_be_changed_through_the_orm(store):
    reading_id = _a_reading(store)
    with pytest.raises(ImmutableReadingError), store.session() as session:
        session.get(Reading, reading_id).probability = 90.0
    with pytest.raises(ImmutableReadingError), store.session() as session:
        session.delete(session.get(Reading, reading_id))
    with store.session() as session:
        assert session.get(Reading, reading_id).probability == 40.0


def test_the_database_itself_refuses_to_change_readings(store):
    reading_id = _a_reading(store)
    with pytest.raises(DBAPIError, match="immutable"), store.session() as session:
        session.execute(update(Reading).where(Reading.id == reading_id).values(probability=90.0))
    with pytest.raises(DBAPIError, match="immutable"), store.session() as session:
        session.execute(text("DELETE FROM readings"))
    with store.session() as session:
        assert session.get(Reading, reading_id).probability == 40.0
