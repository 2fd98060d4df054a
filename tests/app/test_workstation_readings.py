"""Workstation readings outside studies, on SQLite and PostgreSQL: committed at once, superseded by a
changed estimate, never edited, one reader's own only, validated; one row per revision even when two
workstations write at once."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.reading.readings import Estimate, InvalidReadingError, ModelShown, load_readings, save_reading
from app.store import open_store
from app.store.models import ImmutableReadingError, Phase, Reading
from gmic_core.imaging.views import Laterality

L, R = Laterality.LEFT, Laterality.RIGHT


def test_a_changed_estimate_supersedes_and_the_latest_loads(store):
    first = save_reading(store, "ann", "exam-1", L, Estimate(0.3, 2, False))
    second = save_reading(store, "ann", "exam-1", L, Estimate(0.6, 4, True), ModelShown(0.8, 0.25))
    save_reading(store, "ann", "exam-1", R, Estimate(0.05, None, False))
    assert load_readings(store, "ann", "exam-1") == {
        L: Estimate(0.6, 4, True),
        R: Estimate(0.05, None, False),
    }
    with store.session() as session:
        rows = {row.id: row for row in session.scalars(select(Reading))}
    assert rows[second].supersedes_id == first
    assert (rows[first].revision, rows[second].revision) == (0, 1)
    assert rows[first].phase == Phase.UNAIDED
    assert rows[second].phase == Phase.AIDED
    assert rows[second].hybrid == pytest.approx(0.25 * 0.6 + 0.75 * 0.8)
    assert rows[second].study_id is None


def test_an_unanswered_birads_or_recall_is_stored_as_unknown_never_as_no(store):
    reading_id = save_reading(store, "ann", "exam-1", L, Estimate(0.3, None, None))
    with store.session() as session:
        row = session.get_one(Reading, reading_id)
        assert (row.birads, row.recall) == (None, None)
    assert load_readings(store, "ann", "exam-1") == {L: Estimate(0.3, None, None)}


def test_a_reader_loads_only_their_own_readings(store):
    save_reading(store, "ann", "exam-1", L, Estimate(0.3, None, False))
    assert load_readings(store, "bob", "exam-1") == {}
    assert load_readings(store, "ann", "exam-2") == {}


def test_readings_stay_immutable(store):
    reading_id = save_reading(store, "ann", "exam-1", L, Estimate(0.3, None, False))
    with pytest.raises(ImmutableReadingError), store.session() as session:
        session.get_one(Reading, reading_id).probability = 10
    assert load_readings(store, "ann", "exam-1")[L].probability == 0.3


@pytest.mark.parametrize(
    ("reader", "estimate", "error"),
    [
        ("ann", (1.01, None, False), InvalidReadingError),
        ("ann", (0.5, 7, False), InvalidReadingError),
        (" ", (0.5, None, False), InvalidReadingError),
    ],
)
def test_bad_estimates_are_refused(store, reader, estimate, error):
    with pytest.raises(error):
        save_reading(store, reader, "exam-1", L, Estimate(*estimate))


COPIED = ("reader_id", "exam_id", "laterality", "phase", "revision", "probability", "recall", "ai_shown")


def test_one_revision_per_workstation_reading(store):
    first = save_reading(store, "ann", "exam-1", L, Estimate(0.3, None, False))
    with store.session() as session:
        row = session.get_one(Reading, first)
        copy = Reading(
            **{column: getattr(row, column) for column in COPIED},
            submission_key="another",
            started_at=row.started_at,
            submitted_at=row.submitted_at,
            duration_s=0.0,
        )
    with pytest.raises(IntegrityError), store.session() as session:
        session.add(copy)


SAVING = """
import sys
from app.reading.readings import Estimate, save_reading
from app.store import open_store
from gmic_core.imaging.views import Laterality
store = open_store(sys.argv[1])
for index in range(int(sys.argv[2])):
    save_reading(store, "ann", "exam-1", Laterality.LEFT, Estimate(index / 100, None, False))
"""


def test_two_workstations_writing_at_once_get_one_revision_each(postgres_url):
    """On PostgreSQL, where two writers race (SQLite's BEGIN IMMEDIATE makes them queue)."""
    store = open_store(postgres_url)
    each = 6
    workers = [
        subprocess.Popen([sys.executable, "-c", SAVING, postgres_url, str(each)], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for worker in workers:
        _, error = worker.communicate(timeout=120)
        assert worker.returncode == 0, error.decode()
    with store.session() as session:
        rows = list(session.scalars(select(Reading).order_by(Reading.revision)))
    assert [row.revision for row in rows] == list(range(2 * each))
    assert [row.supersedes_id for row in rows] == [None] + [row.id for row in rows[:-1]]
    store.dispose()


def test_the_hybrid_is_stored_as_a_fraction_by_hand(store):
    """The reader says 85 %, the model 0.40, lambda 0.5: 0.5 * 0.85 + 0.5 * 0.40 = 0.625 (not 62.5,
    not 42.7); the probability is stored in percent, the hybrid and the model score in [0, 1]."""
    reading_id = save_reading(store, "ann", "exam-1", L, Estimate(0.85, None, False), ModelShown(0.40, 0.5))
    with store.session() as session:
        row = session.get_one(Reading, reading_id)
        assert (row.probability, row.model_score, row.hybrid_weight) == (85.0, 0.40, 0.5)
        assert row.hybrid == pytest.approx(0.625, abs=1e-12)
