"""Reader-study analyses: ``gmic study analyze`` on the published Van Dyke ratings, rating tables,
and ``gmic study report`` on a simulated study whose readers' true AUCs are known.

The published Van Dyke figures checked here are those of MRMCaov's README (``mrmc(empirical_auc(truth,
rating), treatment, reader, case, data = VanDyke)``, https://github.com/brian-j-smith/MRMCaov) and
RJafroc's ``dataset02`` (see tests/core/test_mrmc.py for the full list and sources).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from app.cli import main
from app.reading.readings import Estimate
from app.store.models import Protocol
from app.store.results import save_exam_result
from app.study.analysis import AnalysisError, analyze, read_ratings_csv, study_ratings
from app.study.cases import CaseSpec
from app.study.service import StudyService
from gmic_core import metrics
from gmic_core.imaging.views import Laterality
from tests.app.factories import IDENTITY, fake_exam_result

VAN_DYKE_READER_AUCS = {
    "0": {"0": 0.91964573, "1": 0.94782609},
    "1": {"0": 0.85877617, "1": 0.90531401},
    "2": {"0": 0.90386473, "1": 0.92173913},
    "3": {"0": 0.97310789, "1": 0.99935588},
    "4": {"0": 0.82979066, "1": 0.92995169},
}


def test_gmic_study_analyze_reproduces_the_published_van_dyke_analysis(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "vandyke"
    assert main(["study", "analyze", str(fixtures_dir / "mrmc" / "vandyke.csv"), "--out", str(out)]) == 0
    assert "F 4.456" in capsys.readouterr().out
    report = json.loads((out / "analysis.json").read_text())
    for reader, aucs in VAN_DYKE_READER_AUCS.items():
        assert report["readers"][reader] == pytest.approx(aucs, abs=5e-9)
    assert report["modalities"] == pytest.approx({"0": 0.89703704, "1": 0.94083736}, abs=5e-9)
    jackknife = report["or"]["jackknife"]
    assert jackknife["F"] == pytest.approx(4.456319, rel=1e-6)
    assert jackknife["ddf"] == pytest.approx(15.25967, rel=1e-6)
    assert jackknife["p"] == pytest.approx(0.05166569, rel=1e-6)
    assert jackknife["difference"] == pytest.approx(-0.04380032, rel=1e-6)
    assert jackknife["ci"] == pytest.approx([-0.0879594986, 0.0003588544], rel=1e-6)
    assert report["modality_ci"]["0"]["wald_ci"] == pytest.approx([0.8252236, 0.9688505], abs=1e-7)
    assert report["modality_ci"]["1"]["wald_ci"] == pytest.approx([0.8941378, 0.9875369], abs=1e-7)
    for modality, mean in report["modalities"].items():
        low, high = report["modality_ci"][modality]["ci"]
        assert 0 < low < mean < high < 1
    assert report["dbm"]["F"] == pytest.approx(jackknife["F"], rel=1e-9)
    assert set(report["or"]["delong"]) == {"F", "df1", "ddf", "p", "difference", "std_err", "ci"}
    assert "model" not in report
    for picture in ("roc.png", "pr.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = read_ratings_csv(out / "ratings.csv")
    original = read_ratings_csv(fixtures_dir / "mrmc" / "vandyke.csv")
    np.testing.assert_array_equal(again.ratings, original.ratings)
    assert again.readers == original.readers


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("reader,case,modality,truth\n", "lack the column"),
        ("reader,case,modality,truth,rating\na,1,m,1,3\na,1,m,1,4\n", "twice"),
        ("reader,case,modality,truth,rating\na,1,m,1,3\nb,1,m,0,4\n", "two different truths"),
        ("reader,case,modality,truth,rating\na,1,m,1,3\na,2,m,0,1\nb,1,m,1,2\n", "missing"),
        ("reader,case,modality,truth,rating\na,1,m,1,3\na,2,m,1,1\n", "both classes"),
        ("reader,case,modality,truth,rating\na,1,m,1,x\n", "line 2"),
    ],
)
def test_bad_rating_tables_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "ratings.csv"
    path.write_text(content)
    with pytest.raises(AnalysisError, match=message):
        read_ratings_csv(path)
    assert main(["study", "analyze", str(path), "--out", str(tmp_path / "out")]) == 2


def test_a_simulated_study_recovers_the_readers_true_aucs(store, tmp_path, monkeypatch):
    """Binormal readers: a breast's latent value is N(mu, 1) when malignant, N(0, 1) otherwise, so a
    reader's true AUC is Phi(mu / sqrt 2); readers enter 100 * Phi(latent - 1) percent. Readers are
    better with the model shown (sequential protocol); the model has its own known AUC."""
    rng = np.random.default_rng(12)
    exams = 90
    truth = rng.random((exams, 2)) < 0.3
    true_auc = {"r1": (0.78, 0.84), "r2": (0.82, 0.88), "r3": (0.86, 0.90)}
    model_auc = 0.85

    def latent(auc):
        return np.sqrt(2) * stats.norm.ppf(auc) * truth + rng.normal(size=truth.shape)

    model = stats.norm.cdf(latent(model_auc) - 1)
    sides = (Laterality.LEFT, Laterality.RIGHT)
    with store.session() as session:
        for index in range(exams):
            scores = {side: float(model[index, k]) for k, side in enumerate(sides)}
            save_exam_result(session, fake_exam_result(f"exam-{index}", seed=index, malignant=scores))
    cases = [
        CaseSpec(f"exam-{i}", {side: bool(truth[i, k]) for k, side in enumerate(sides)}) for i in range(exams)
    ]
    service = StudyService(store)
    service.create_study("sim", cases, Protocol.SEQUENTIAL, seed=1, model_key=IDENTITY.key)
    for reader, (unaided_auc, aided_auc) in true_auc.items():
        service.enrol("sim", reader)
        percent = {
            phase: 100 * stats.norm.cdf(latent(auc) - 1)
            for phase, auc in (("unaided", unaided_auc), ("aided", aided_auc))
        }
        session = service.open_session("sim", reader)
        while (task := session.current()) is not None:
            index = int(task.case_key.split("-")[1])
            values = percent[task.phase.value][index]
            estimates = {
                side: Estimate(values[k] / 100, 4 if values[k] >= 50 else 2, bool(values[k] >= 50))
                for k, side in enumerate(sides)
            }
            session.submit(task, estimates, model_shown=True)
    database = store.engine.url.render_as_string(hide_password=False)
    out = tmp_path / "report"
    assert main(["study", "report", "sim", "--db", database, "--out", str(out)]) == 0
    report = json.loads((out / "analysis.json").read_text())
    assert report["cases"] == 2 * exams
    for reader, aucs in true_auc.items():
        for phase, auc in zip(("unaided", "aided"), aucs, strict=True):
            low, high = report["readers_auc_ci"][reader][phase]
            assert low <= auc <= high, (reader, phase, report["readers"][reader][phase])
    for phase, column in (("unaided", 0), ("aided", 1)):
        low, high = report["modality_ci"][phase]["ci"]
        assert low <= np.mean([aucs[column] for aucs in true_auc.values()]) <= high
    low, high = report["model"]["ci"]
    assert low <= model_auc <= high
    assert report["or"]["jackknife"]["difference"] < 0  # unaided minus aided
    assert report["hybrid"]["from"] == ["unaided"]  # an aided reading already contains the model
    assert "aided" not in report["hybrid"]
    assert "aided" not in report["specificity"]
    hybrid = report["hybrid"]["unaided"]["r1"]
    assert len(hybrid["auc"]) == 21
    assert hybrid["best_auc"] >= max(hybrid["auc_at_0_5"], hybrid["auc"][0], hybrid["auc"][-1])
    specificity = report["specificity"]["unaided"]
    assert 0 < specificity["readers_mean_sensitivity"] < 1
    model_point = specificity["model"]
    assert model_point["ci"][0] <= model_point["specificity"] <= model_point["ci"][1]
    assert model_point["sensitivity"] >= specificity["readers_mean_sensitivity"] - 1e-12
    assert set(specificity["hybrid"]["r2"]) == {"0.5", "best"}
    for picture in ("roc.png", "pr.png", "hybrid_auc.png"):
        assert (out / picture).is_file()
    page = (out / "report.html").read_text()
    assert "Warnings" not in page  # three readers, 180 breasts, 67 malignant
    assert page.count('src="data:image/png;base64,') == 3
    assert 'src="http' not in page
    assert "an aided reading already contains the model" in page
    exported = read_ratings_csv(out / "ratings.csv")
    assert exported.modalities == ("unaided", "aided")
    assert exported.recall is not None


RATINGS_WITH_MODEL = "reader,case,modality,truth,rating\n" + "".join(
    f"{reader},{case},m,{case % 2},{rating}\n"
    for case in range(4)
    for reader, rating in (("a", 1 + case), ("b", 2 + case % 3), ("ai", case / 4))
)


@pytest.mark.parametrize(
    ("scale", "message"),
    [(None, "state their scale as 1"), (5.0, "not 5.0"), (1.0, "outside the stated scale 0-1")],
)
def test_a_model_reader_needs_readers_probabilities_on_a_stated_scale(tmp_path, scale, message):
    path = tmp_path / "ratings.csv"
    path.write_text(RATINGS_WITH_MODEL)
    with pytest.raises(AnalysisError, match=message):
        read_ratings_csv(path, "ai", scale)
    table = read_ratings_csv(path, "ai", 100.0)
    assert table.rating_scale == 100.0
    assert table.model.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert read_ratings_csv(path).readers == ("a", "b", "ai")  # without a model reader: ranks only


CASES = [CaseSpec(f"exam-{index}", {Laterality.LEFT: index < 2}) for index in range(4)]
POSITIVE = ("exam-0", "exam-1")


def _read_all(service, study, reader):
    service.enrol(study, reader)
    session = service.open_session(study, reader)
    while (task := session.current()) is not None:
        estimate = Estimate(0.9, 4, True) if task.case_key in POSITIVE else Estimate(0.3, 2, False)
        session.submit(task, {Laterality.LEFT: estimate}, model_shown=True)


def _run_model(store, score):
    with store.session() as session:
        for index, case in enumerate(CASES):
            save_exam_result(
                session,
                fake_exam_result(case.case_key, seed=index, malignant={Laterality.LEFT: score(index)}),
            )


def test_the_analysis_uses_the_model_score_the_readers_were_shown(store):
    _run_model(store, lambda index: 0.2 * index)
    service = StudyService(store)
    service.create_study("shown", CASES, Protocol.AI_ASSISTED, seed=0, model_key=IDENTITY.key)
    for reader in ("r1", "r2"):
        _read_all(service, "shown", reader)
    _run_model(store, lambda index: 0.9 - 0.2 * index)  # run again after the study: not what was shown
    table = study_ratings(store, "shown")
    assert table.model.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6])
    service.create_study("rerun", CASES, Protocol.AI_ASSISTED, seed=0, model_key=IDENTITY.key)
    _read_all(service, "rerun", "r1")
    _run_model(store, lambda index: 0.1)  # run again during the study: r2 is shown other scores
    _read_all(service, "rerun", "r2")
    with pytest.raises(AnalysisError, match="shown different model scores"):
        study_ratings(store, "rerun")


DECISIONS = {  # reader -> per case (truth 1, 1, 1, 0, 0, 0): (rating, recall, BI-RADS, seconds)
    "a": [(90, 1, 5, 30), (60, 1, 4, 40), (20, 0, 2, 50), (70, 1, 3, 20), (10, 0, 1, 60), (5, 0, 1, 10)],
    "b": [(80, 1, 4, 35), (30, 1, 3, 45), (40, 0, 3, 55), (20, 0, 2, 25), (15, 0, 1, 65), (25, 0, "", 15)],
    "c": [(95, 1, 5, 70), (70, 1, 4, 80), (10, 0, 1, 90), (60, 1, 4, 30), (30, 1, 2, 100), (5, 0, 1, 20)],
}


def test_operating_points_agreement_and_reading_times(tmp_path, capsys):
    lines = ["reader,case,modality,truth,rating,recall,birads,duration_s"]
    for reader, rows in DECISIONS.items():
        lines += [f"{reader},{k},m,{int(k < 3)},{','.join(map(str, row))}" for k, row in enumerate(rows)]
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["study", "analyze", str(path), "--out", str(out)]) == 0
    assert "reader a, m: recall sensitivity 0.667 (2/3), specificity 0.667 (2/3)" in capsys.readouterr().out
    report = json.loads((out / "analysis.json").read_text())
    points = report["operating_points"]
    assert points["a"]["m"]["birads>=3"] == {
        "sensitivity": 2 / 3, "specificity": 2 / 3, "tp": 2, "fn": 1, "tn": 2, "fp": 1
    }  # fmt: skip
    assert points["a"]["m"]["birads>=4"]["fp"] == 0
    assert points["b"]["m"]["without_birads"] == 1
    assert points["b"]["m"]["birads>=3"]["tn"] + points["b"]["m"]["birads>=3"]["fp"] == 2
    agreement = report["agreement"]["m"]
    recall = {reader: [row[1] for row in rows] for reader, rows in DECISIONS.items()}
    assert agreement["recall"]["cohen"]["a|c"] == pytest.approx(cohen_kappa_score(recall["a"], recall["c"]))
    birads = {reader: [row[2] for row in rows] for reader, rows in DECISIONS.items()}
    assert agreement["birads"]["cohen"]["a|b"] == pytest.approx(
        cohen_kappa_score(birads["a"][:5], birads["b"][:5])
    )
    assert agreement["birads"]["cases"] == 5
    assert agreement["recall"]["fleiss"] == pytest.approx(
        metrics.fleiss_kappa(np.array(list(recall.values())))
    )
    times = report["reading_time"]["m"]
    assert times["readers"]["a"] == {"readings": 6, "median_s": 35.0, "iqr_s": [22.5, 47.5]}
    assert times["pooled"]["median_s"] == pytest.approx(42.5)
    again = read_ratings_csv(out / "ratings.csv")
    np.testing.assert_array_equal(again.birads, read_ratings_csv(path).birads)


def test_an_unanswered_recall_is_left_out_of_the_recall_counts_never_counted_as_no(tmp_path):
    lines = ["reader,case,modality,truth,rating,recall"]
    for reader, rows in DECISIONS.items():
        for k, row in enumerate(rows):
            recall = "" if (reader, k) in {("b", 0), ("b", 4)} else row[1]
            lines.append(f"{reader},{k},m,{int(k < 3)},{row[0]},{recall}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    table = read_ratings_csv(path)
    report = analyze(table, tmp_path / "out")
    assert report["operating_points"]["b"]["m"]["recall"] == {
        "sensitivity": 1 / 2, "specificity": 1.0, "tp": 1, "fn": 1, "tn": 2, "fp": 0
    }  # fmt: skip
    assert report["operating_points"]["b"]["m"]["without_recall"] == 2
    assert report["agreement"]["m"]["recall"]["cases"] == 4
    again = read_ratings_csv(tmp_path / "out" / "ratings.csv")
    np.testing.assert_array_equal(again.recall, table.recall)  # NaN where not given, in both
    assert np.isnan(table.recall[0, 1, [0, 4]]).all()


def test_tied_best_hybrid_weights_are_reported_as_a_range(tmp_path):
    """Reader and model both rank the cases perfectly: every lambda gives AUC 1, so the best lambda is
    the whole range [0, 1], not the first one tried."""
    rows = "".join(
        f"{reader},{case},unaided,{int(case >= 2)},{score}\n"
        for case in range(4)
        for reader, score in (("a", 10 + 20 * case), ("ai", case / 4))
    )
    path = tmp_path / "ratings.csv"
    path.write_text("reader,case,modality,truth,rating\n" + rows)
    report = analyze(read_ratings_csv(path, "ai", 100.0), tmp_path / "out")
    assert report["hybrid"]["unaided"]["a"]["best_lambda"] == [0.0, 1.0]
    assert report["hybrid"]["unaided"]["a"]["best_lambda_used"] == 0.5
    page = (tmp_path / "out" / "report.html").read_text()
    assert page.index("Warnings") < page.index("4 cases: fewer than 50") < page.index("ROC AUC per reader")
