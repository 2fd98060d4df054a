"""A coordinator runs a study from the command line, on SQLite and PostgreSQL: the roster, a typo
refused, progress and orders, interim and full reports with what they left out, exclusions, the
export; and the statistics at small sizes: warnings, AUC intervals within [0, 1], the averaged ROC."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from app.cli import main
from app.reading.readings import Estimate
from app.store.results import save_exam_result
from app.study.analysis import RatingTable, analyze, averaged_roc, read_ratings_csv
from app.study.oversight import EXPORT_COLUMNS
from app.study.service import StudyService
from gmic_core import mrmc
from gmic_core.imaging.views import Laterality
from tests.app.factories import IDENTITY, fake_exam_result

L, R = Laterality.LEFT, Laterality.RIGHT
POSITIVE = {"exam-0", "exam-1"}


def _read_all(store, reader, probability=lambda positive: 0.9 if positive else 0.2, limit=None):
    session = StudyService(store).open_session("pilot", reader)
    read = 0
    while (task := session.current()) is not None and read != limit:
        high = probability(task.case_key in POSITIVE)
        left = Estimate(high, 4 if high >= 0.5 else 2, high >= 0.5)
        session.submit(task, {L: left, R: Estimate(0.1, 1, False)}, model_shown=False)
        read += 1


def test_a_coordinator_runs_a_blinded_study_with_the_model_as_a_reader(store, tmp_path, capsys):
    db = store.engine.url.render_as_string(hide_password=False)
    listing = tmp_path / "cases.csv"
    listing.write_text("exam_id,left_malignant,right_malignant\n" + "".join(
        f"exam-{i},{int(f'exam-{i}' in POSITIVE)},0\n" for i in range(6)
    ))  # fmt: skip
    with store.session() as session:
        for i in range(6):
            save_exam_result(session, fake_exam_result(f"exam-{i}", seed=i, malignant={L: 0.1 * i, R: 0.05}))
    create = [
        "study",
        "create",
        "pilot",
        str(listing),
        "--seed",
        "7",
        "--model-key",
        IDENTITY.key,
        "--db",
        db,
    ]
    assert main(create) == 0
    for reader in ("Edge-1", "rad-b", "rad-c"):
        assert main(["study", "readers", "pilot", "--add", reader, "--db", db]) == 0
    assert main(["study", "readers", "pilot", "--add", " edge-1", "--db", db]) == 2  # the same reader
    assert "enrolled in study 'pilot' already" in capsys.readouterr().err
    _read_all(store, "edge-1 ")
    _read_all(store, "rad-b", lambda positive: 0.6 if positive else 0.4)
    _read_all(store, "rad-c", limit=1)  # a stray reading
    capsys.readouterr()

    assert main(["study", "show", "pilot", "--db", db]) == 0
    shown = capsys.readouterr().out
    assert "seed 7" in shown
    assert f"model key: {IDENTITY.key}" in shown
    assert "reader Edge-1: 6 / 6" in shown
    assert "reader rad-c: 1 / 6" in shown
    orders = [line.split(": ")[1].split() for line in shown.splitlines() if line.startswith("  order:")]
    assert len({tuple(order) for order in orders}) == 3  # balanced rows differ
    assert main(["study", "list", "--db", db]) == 0
    assert "pilot\tblinded\t6 cases\t3 readers" in capsys.readouterr().out

    out = tmp_path / "report"
    assert main(["study", "report", "pilot", "--db", db, "--out", str(out)]) == 2
    assert "reader rad-c has read 2 of 12" in capsys.readouterr().err
    assert main(["study", "report", "pilot", "--interim", "--db", db, "--out", str(out)]) == 0
    assert "warning: interim report" in capsys.readouterr().out
    interim = json.loads((out / "analysis.json").read_text())
    assert interim["interim"]
    assert set(interim["readers"]) == {"Edge-1", "rad-b"}
    assert "left out: reader rad-c: 2 of 12 breast readings (interim report)" in interim["warnings"]

    assert main(["study", "readers", "pilot", "--exclude", "RAD-C", "--db", db]) == 2  # no reason
    assert main(["study", "readers", "pilot", "--exclude", "RAD-C", "--reason", "left", "--db", db]) == 0
    assert main(["study", "report", "pilot", "--db", db, "--out", str(out)]) == 0
    report = json.loads((out / "analysis.json").read_text())
    assert not report["interim"]
    assert report["left_out"] == ["reader rad-c: excluded (left)"]
    assert report["model"]["auc"] == pytest.approx(0.3)  # the blinded study's model, a stand-alone reader
    assert {"fewer than 3", "fewer than 50", "fewer than 10"} <= {
        phrase for warning in report["warnings"] for phrase in ("fewer than 3", "fewer than 50", "fewer than 10")
        if phrase in warning
    }  # fmt: skip

    export = tmp_path / "readings.csv"
    assert main(["study", "export", "pilot", "--out", str(export), "--db", db]) == 0
    with export.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == 2 * 6 + 2 * 6 + 2
    assert {row["excluded"] for row in rows if row["reader"] == "rad-c"} == {"reader: left"}
    assert all(row["birads"] and row["recall"] in ("0", "1") for row in rows)
    reading = next(row for row in rows if row["reader"] == "rad-b")["reading_id"]
    assert main(["study", "readers", "pilot", "--exclude-reading", reading, "--reason", "x", "--db", db]) == 0
    assert main(["study", "report", "pilot", "--db", db, "--out", str(out)]) == 0
    report = json.loads((out / "analysis.json").read_text())
    assert report["cases"] == 11
    assert any(item.startswith("case ") and "excluded (x)" in item for item in report["left_out"])


def _table(ratings, truth, modalities=("m",)) -> RatingTable:
    ratings = np.asarray(ratings, dtype=float)
    readers = tuple(f"r{j}" for j in range(ratings.shape[1]))
    cases = tuple(str(k) for k in range(ratings.shape[2]))
    return RatingTable(readers, tuple(modalities), cases, np.asarray(truth, dtype=bool), ratings)


def test_the_averaged_roc_is_the_vertical_average_and_its_area_the_mean_auc(fixtures_dir):
    truth = np.array([1, 1, 0, 0], dtype=bool)
    ratings = np.array([[4, 2, 3, 1], [3, 3, 3, 1]], dtype=float)  # AUC 0.75 each, with ties in the second
    fpr, tpr = averaged_roc(ratings, truth)
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)
    table = read_ratings_csv(fixtures_dir / "mrmc" / "vandyke.csv")
    aucs = mrmc.empirical_aucs(table.ratings, table.truth)
    for i in range(len(table.modalities)):
        fpr, tpr = averaged_roc(table.ratings[i], table.truth)
        assert np.trapezoid(tpr, fpr) == pytest.approx(aucs[i].mean(), abs=1e-12)
        assert np.all(np.diff(fpr) >= 0)
        assert np.all(np.diff(tpr) >= -1e-12)


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ([5, 4, 3, 1, 2, 0.5, 0.4, 0.3], (0.9375, None)),  # near 1: the plain normal interval passes 1
        ([5, 4, 0, 1, 1, 0.5, 0.4, 0.3], (0.71875, None)),
        ([1, 1, 1, 1, 0, 0, 0, 0], (1.0, 0.05 ** (1 / 4))),  # perfect: the exact one-sided bound
        ([0, 0, 0, 0, 1, 1, 1, 1], (0.0, None)),
    ],
)
def test_auc_intervals_stay_within_0_and_1_and_a_degenerate_auc_gets_an_exact_bound(ratings, expected):
    truth = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    auc, low, high = mrmc.delong_auc_ci(np.array(ratings, dtype=float), truth)
    assert auc == pytest.approx(expected[0])
    assert 0.0 <= low <= auc <= high <= 1.0
    assert high - low > 0.05  # never zero-width
    if expected[1] is not None:
        assert (low, high) == (pytest.approx(expected[1]), 1.0)


def test_a_tiny_study_warns_and_its_analysis_raises_no_runtime_warnings(tmp_path):
    table = _table([[[0.9, 0.4, 0.3, 0.1]]], [1, 0, 0, 0])  # one reader, four cases, one positive
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = analyze(table, tmp_path)
    assert report["warnings"][:4] == [
        "1 reader(s): fewer than 3, the MRMC results generalise poorly",
        "4 cases: fewer than 50, intervals and p-values are unreliable",
        "1 positive case(s): fewer than 10, sensitivity is barely estimated",
        "MRMC analysis skipped: it needs at least two readers",
    ]
    assert json.loads((tmp_path / "analysis.json").read_text())["warnings"] == report["warnings"]
    low, high = report["readers_auc_ci"]["r0"]["m"]
    assert 0.0 <= low <= high <= 1.0
