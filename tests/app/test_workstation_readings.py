"""Workstation readings outside studies, on SQLite and PostgreSQL: committed at once, superseded by a
changed estimate, never edited, one reader's own only, validated."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.reading.readings import Estimate, InvalidReadingError, ModelShown, load_readings, save_reading
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
