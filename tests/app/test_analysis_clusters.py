"""A woman's two breasts as one cluster in the study analyses: from the study's exams, from a
``cluster`` column, and ``--independent-breasts``, which the report names and warns about."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest

from app.cli import main
from app.reading.readings import Estimate
from app.store.models import Protocol
from app.study.analysis import AnalysisError, analyze, read_ratings_csv, study_ratings, write_ratings_csv
from app.study.cases import CaseSpec
from app.study.service import StudyService
from gmic_core import mrmc
from gmic_core.imaging.views import Laterality

L, R = Laterality.LEFT, Laterality.RIGHT
# exam-0 and exam-1: one malignant breast each; exam-2: both; exam-3, exam-4: none
CASES = [CaseSpec(f"exam-{index}", {L: index in (0, 1, 2), R: index == 2}) for index in range(5)]
PROBABILITY = {"r1": (0.9, 0.2, 0.7, 0.4, 0.3), "r2": (0.6, 0.8, 0.5, 0.1, 0.55)}  # per exam, left breast


def test_study_ratings_cluster_the_breasts_by_exam_and_the_report_names_it(store, tmp_path, capsys):
    service = StudyService(store)
    service.create_study("pairs", CASES, Protocol.BLINDED, seed=3)
    for reader, left in PROBABILITY.items():
        service.enrol("pairs", reader)
        session = service.open_session("pairs", reader)
        while (task := session.current()) is not None:
            p = left[int(task.case_key.split("-")[1])]
            estimates = {L: Estimate(p, 4 if p >= 0.5 else 2, p >= 0.5), R: Estimate(p / 2, 2, False)}
            session.submit(task, estimates, model_shown=False)
    table = study_ratings(store, "pairs")
    assert table.clusters == tuple(case.split(":")[0] for case in table.cases)
    assert sorted(set(table.clusters)) == [case.case_key for case in CASES]
    database = store.engine.url.render_as_string(hide_password=False)
    reports = {}
    for flags in ([], ["--independent-breasts"]):
        out = tmp_path / ("independent" if flags else "clustered")
        assert main(["study", "report", "pairs", "--db", database, "--out", str(out), *flags]) == 0
        reports[bool(flags)] = (
            json.loads((out / "analysis.json").read_text()),
            (out / "report.html").read_text(),
        )
    (clustered, clustered_page), (independent, independent_page) = reports[False], reports[True]
    described = "cases clustered by woman (exam): 5 clusters of 10 breasts; Obuchowski 1997"
    assert clustered["clustering"] == {
        "clustered": True,
        "clusters": 5,
        "description": described,
        "unclusterable": None,
    }
    assert described in clustered_page
    assert clustered["auc_interval_method"] == mrmc.CLUSTERED_AUC_INTERVAL_METHOD
    assert clustered["modality_interval_method"] == mrmc.CLUSTERED_MODALITY_INTERVAL_METHOD
    assert not any("independent" in warning for warning in clustered["warnings"])
    assert (
        independent["clustering"]["description"] == "breasts treated as independent (--independent-breasts)"
    )
    assert "breasts treated as independent (--independent-breasts)" in independent_page
    assert independent["auc_interval_method"] == mrmc.AUC_INTERVAL_METHOD
    (warning,) = [warning for warning in independent["warnings"] if "independent" in warning]
    assert "5 women have two breasts" in warning
    assert "breasts treated as independent" in capsys.readouterr().out
    assert independent["readers"] == clustered["readers"]  # the AUCs themselves do not change
    exported = read_ratings_csv(tmp_path / "clustered" / "ratings.csv")
    assert exported.clusters == table.clusters


def _duplicated_csv(fixtures_dir, tmp_path):
    """Van Dyke's table with every case entered twice, as a woman's two breasts (cluster = case)."""
    with (fixtures_dir / "mrmc" / "vandyke.csv").open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    lines = ["reader,case,modality,truth,rating,cluster"] + [
        f"{row['reader']},{row['case']}{side},{row['modality']},{row['truth']},{row['rating']},{row['case']}"
        for row in rows
        for side in "LR"
    ]
    path = tmp_path / "duplicated.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_duplicated_breasts_in_a_ratings_file_gain_no_precision_unless_declared_independent(
    fixtures_dir, tmp_path, capsys
):
    path = _duplicated_csv(fixtures_dir, tmp_path)
    runs = {}
    for name, arguments in (
        ("original", [str(fixtures_dir / "mrmc" / "vandyke.csv")]),
        ("clustered", [str(path)]),
        ("independent", [str(path), "--independent-breasts"]),
    ):
        assert main(["study", "analyze", *arguments, "--out", str(tmp_path / name)]) == 0
        runs[name] = json.loads((tmp_path / name / "analysis.json").read_text())
    original, clustered, independent = runs["original"], runs["clustered"], runs["independent"]
    assert (
        original["clustering"]["description"] == "cases treated as independent (the ratings name no clusters)"
    )
    assert clustered["clustering"]["clusters"] == 114
    for key in ("F", "ddf", "p", "std_err", "ci"):
        assert clustered["or"]["jackknife"][key] == pytest.approx(original["or"]["jackknife"][key], rel=1e-12)
        assert clustered["dbm"][key] == pytest.approx(original["dbm"][key], rel=1e-12)
    for modality, interval in original["modality_ci"].items():
        assert clustered["modality_ci"][modality]["ci"] == pytest.approx(interval["ci"], rel=1e-12)
    assert independent["or"]["jackknife"]["std_err"] < 0.9 * original["or"]["jackknife"]["std_err"]
    assert independent["or"]["delong"]["std_err"] < 0.9 * clustered["or"]["delong"]["std_err"]
    for reader, modalities in clustered["readers_auc_ci"].items():
        for modality, (low, high) in modalities.items():
            narrower = independent["readers_auc_ci"][reader][modality]
            assert narrower[1] - narrower[0] < high - low
    assert "114 women have two breasts" in " ".join(independent["warnings"])
    assert "cases clustered by woman" in capsys.readouterr().out
    again = read_ratings_csv(tmp_path / "clustered" / "ratings.csv")
    assert again.clusters == read_ratings_csv(path).clusters


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "reader,case,modality,truth,rating,cluster\na,1,m,1,3,w1\na,2,m,0,1,\n",
            "line 3: no cluster for case 2",
        ),
        (
            "reader,case,modality,truth,rating,cluster\na,1,m,1,3,w1\na,2,m,0,1,w1\nb,1,m,1,2,w2\n",
            "line 4: case 1 is in two clusters",
        ),
    ],
)
def test_bad_clusters_in_a_ratings_file_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(AnalysisError, match=message):
        read_ratings_csv(path)


def test_a_table_without_clusters_is_written_and_read_without_them(fixtures_dir, tmp_path):
    table = read_ratings_csv(fixtures_dir / "mrmc" / "vandyke.csv")
    assert table.clusters is None
    write_ratings_csv(table, tmp_path / "ratings.csv")
    assert "cluster" not in (tmp_path / "ratings.csv").read_text().splitlines()[0]
    report = analyze(table, tmp_path / "out", independent_breasts=True)
    assert not any("independent" in warning for warning in report["warnings"])
    np.testing.assert_array_equal(read_ratings_csv(tmp_path / "ratings.csv").ratings, table.ratings)


def test_a_study_whose_positive_breasts_are_one_womans_is_analysed_as_independent_and_warns(tmp_path):
    """The cluster jackknife cannot leave out the only woman with cancer: the analysis still runs,
    treats the breasts as independent and says so, instead of refusing a small study."""
    path = tmp_path / "ratings.csv"
    rows = ["reader,case,modality,truth,rating,cluster"]
    for reader, shift in (("a", 0), ("b", 1)):
        for modality in ("unaided", "aided"):
            for case, truth, rating, woman in (
                ("w1:L", 1, 80, "w1"), ("w1:R", 1, 30, "w1"), ("w2:L", 0, 20, "w2"),
                ("w2:R", 0, 50, "w2"), ("w3:L", 0, 10, "w3"), ("w3:R", 0, 40, "w3"),
            ):  # fmt: skip
                rows.append(f"{reader},{case},{modality},{truth},{rating + shift},{woman}")
    path.write_text("\n".join(rows) + "\n")
    report = analyze(read_ratings_csv(path), tmp_path / "out")
    assert report["clustering"]["clustered"] is False
    assert report["clustering"]["unclusterable"] == "the positive breasts belong to 1 woman"
    assert "too few to cluster by woman" in report["clustering"]["description"]
    assert any("clustering by woman needs each class" in warning for warning in report["warnings"])
    assert report["auc_interval_method"] == mrmc.AUC_INTERVAL_METHOD
    for modalities in report["readers_auc_ci"].values():
        for low, high in modalities.values():
            assert 0.0 <= low < high <= 1.0


def test_a_study_with_one_positive_breast_reports_aucs_without_intervals_and_says_why(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = ["reader,case,modality,truth,rating"] + [
        f"{reader},{case},{modality},{truth},{rating + shift}"
        for reader, shift in (("a", 0), ("b", 1))
        for modality in ("unaided", "aided")
        for case, truth, rating in (("1", 1, 80), ("2", 0, 30), ("3", 0, 20), ("4", 0, 90))
    ]
    path.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by the single positive's zero variance
        report = analyze(read_ratings_csv(path), tmp_path / "out")
    assert report["readers"]["a"]["unaided"] == pytest.approx(2 / 3)
    assert report["readers_auc_ci"] == {
        "a": {"unaided": None, "aided": None},
        "b": {"unaided": None, "aided": None},
    }
    assert "or" not in report
    assert "modality_ci" not in report
    assert (
        "MRMC analysis skipped: it needs at least two positive and two negative cases" in report["warnings"]
    )
    assert any(warning.startswith("AUC intervals only where") for warning in report["warnings"])
    assert "no interval" in (tmp_path / "out" / "report.html").read_text()
