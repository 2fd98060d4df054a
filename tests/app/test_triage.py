"""Second-reader triage: batch scoring into the store, resumption, failures, ranking, operating points
and the commands, on a small model and small synthetic exams."""

from __future__ import annotations

import csv
import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from sqlalchemy import delete, func, select

from app.cli import main
from app.predict import predict_paths
from app.store import open_store
from app.store.models import Exam, ModelRun, OperatingPoint, ScoreCalibration, TriageFailure, TriageRun
from app.store.results import load_exam_result
from app.triage import (
    FLAG_TOP,
    HIGH_SUSPICION,
    LIKELY_NORMAL,
    Calibration,
    calibrate,
    flags_for,
    operating_points,
    run_triage,
    save_calibration,
    save_operating_points,
    stored_calibration,
    worklist,
)
from app.triage.operating_points import CalibrationError, SiteSettings, choose_operating_points, site_settings
from app.triage.pipeline import (
    Failure,
    Job,
    exam_job,
    infer_batch,
    manifest_job,
    prepare_job,
    score_jobs,
)
from app.triage.progress import ProgressBar, format_summary
from app.triage.run import TriageProgress, find_exams
from gmic_core import metrics, synthetic
from gmic_core.calibration import Deciles, SiteCalibration, fit_calibration
from gmic_core.dataset import read_manifest
from gmic_core.errors import ExamError
from gmic_core.imaging import View
from gmic_core.inference import Predictor
from gmic_core.reporting.findings import DEFAULT_THRESHOLD
from tests.app.factories import incoming_with_unusable_files
from tests.core import dicom_factory

EXAMS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Six small synthetic exams with their manifest (labels)."""
    folder = tmp_path_factory.mktemp("triage_exams")
    synthetic.write_dataset(
        folder,
        exams=EXAMS,
        seed=3,
        size=(1024, 832),
        transfer_syntax="explicit-little",
        malignant_fraction=0.4,
    )
    return folder


def _runs_per_exam(store, model_key: str) -> dict[str, int]:
    with store.session() as session:
        rows = session.execute(
            select(Exam.exam_key, func.count(ModelRun.id))
            .join(ModelRun)
            .where(ModelRun.model_key == model_key)
            .group_by(Exam.exam_key)
        ).all()
    return dict(rows)


def test_ranking_follows_the_stored_exam_scores(store, predictor, dataset):
    summary = run_triage(store, predictor, [dataset])
    assert (summary.exams_found, summary.scored, summary.skipped, summary.failed) == (EXAMS, EXAMS, 0, [])
    assert summary.ignored  # manifest.csv and the mask PNGs are not DICOM
    key = predictor.identity.key
    with store.session() as session:
        rows = worklist(session, key)
        stored = {row.exam_id: load_exam_result(session, row.exam_id, key).malignancy_score for row in rows}
        by_exam = worklist(session, key, sort="exam")
    assert len(rows) == EXAMS
    assert [row.score for row in rows] == sorted(stored.values(), reverse=True)
    assert all(row.score == stored[row.exam_id] for row in rows)
    assert all(row.status == "scored" and row.flags == () and row.error is None for row in rows)
    assert [row.exam_id for row in by_exam] == sorted(stored)
    with store.session() as session:
        (run,) = session.scalars(select(TriageRun)).all()
        assert (run.status, run.scored, run.failed, run.model_key) == ("finished", EXAMS, 0, key)


def test_an_interrupted_run_resumes_and_scores_each_exam_once(store, predictor, dataset):
    def interrupt_after_two(progress: TriageProgress) -> None:
        if progress.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_triage(store, predictor, [dataset], progress=interrupt_after_two)
    assert sorted(_runs_per_exam(store, predictor.identity.key).values()) == [1, 1]

    cancel = {"now": False}

    def cancel_after_two_more(progress: TriageProgress) -> None:
        cancel["now"] = progress.done == 2

    cancelled = run_triage(
        store,
        predictor,
        [dataset],
        overlap="none",
        progress=cancel_after_two_more,
        cancelled=lambda: cancel["now"],
    )
    assert (cancelled.cancelled, cancelled.skipped, cancelled.scored) == (True, 2, 2)

    resumed = run_triage(store, predictor, [dataset])
    assert (resumed.cancelled, resumed.skipped, resumed.scored) == (False, 4, EXAMS - 4)
    assert sorted(_runs_per_exam(store, predictor.identity.key).values()) == [1] * EXAMS
    again = run_triage(store, predictor, [dataset])
    assert (again.skipped, again.scored) == (EXAMS, 0)
    with store.session() as session:
        statuses = session.scalars(select(TriageRun.status).order_by(TriageRun.id)).all()
    assert statuses == ["interrupted", "cancelled", "finished", "finished"]


def _blank_view(path: Path) -> None:
    """Replace an image's pixels by zeros: preprocessing finds no breast."""
    ds = pydicom.dcmread(path)
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(path)


def test_corrupt_and_non_mammography_files_are_recorded_and_the_run_goes_on(
    store, predictor, dataset, tmp_path
):
    folder = incoming_with_unusable_files(dataset, tmp_path / "incoming")
    _blank_view(folder / "exam_0002" / "L-MLO.dcm")
    (folder / "notes.txt").write_text("not an image")

    summary = run_triage(store, predictor, [folder, tmp_path / "absent"])
    assert summary.scored == 2
    failed = {
        Path(failure.key).name if failure.stage == "scan" else "exam": failure for failure in summary.failed
    }
    assert set(failed) == {"damaged.dcm", "chest.dcm", "absent", "exam"}
    assert failed["exam"].stage == "preprocess"
    assert "L-MLO" in failed["exam"].error
    assert "truncated" in failed["damaged.dcm"].error
    assert "not a breast image" in failed["chest.dcm"].error
    assert [path.name for path in summary.ignored] == ["notes.txt"]

    with store.session() as session:
        rows = worklist(session, predictor.identity.key)
        assert session.scalar(select(func.count(TriageFailure.id))) == 4
    assert [row.status for row in rows] == ["scored", "scored", "failed", "failed", "failed", "failed"]
    blank_exam = next(row for row in rows if row.exam_id is not None and row.status == "failed")
    assert blank_exam.error.startswith("preprocess: ")
    assert all(row.score is None and row.error for row in rows[2:])

    # Fixed and run again: the failures are retried; the ones that score, or are gone, are forgotten.
    shutil.copy(dataset / "exam_0002" / "L-MLO.dcm", folder / "exam_0002" / "L-MLO.dcm")
    (folder / "damaged.dcm").unlink()
    again = run_triage(store, predictor, [folder])
    assert (again.scored, again.skipped, [Path(f.key).name for f in again.failed]) == (1, 2, ["chest.dcm"])
    with store.session() as session:
        remaining = session.scalars(select(TriageFailure.path)).all()
    assert sorted(Path(path).name for path in remaining) == ["absent", "chest.dcm"]


def test_every_overlap_gives_the_same_scores(predictor, dataset):
    exams = find_exams([dataset]).exams[:2]
    scores = {
        overlap: [
            outcome.result.malignancy_score
            for outcome in score_jobs(predictor, map(exam_job, exams), overlap, workers=1)
        ]
        for overlap in ("none", "threads", "processes")
    }
    assert scores["none"] == scores["threads"] == scores["processes"]
    assert len(scores["none"]) == 2


def test_exams_run_as_one_batch_score_as_they_do_alone(predictor, dataset):
    jobs = [exam_job(exam) for exam in find_exams([dataset]).exams[:3]]
    prepare = functools.partial(
        prepare_job, config=predictor.config, background_threshold=None, keep_images=False
    )
    prepared = [prepare(job) for job in jobs]
    lost = Failure(jobs[1].key, "load", "gone")
    batched = infer_batch(predictor, [prepared[0], lost, prepared[2]])
    assert [outcome.key for outcome in batched] == [job.key for job in jobs]
    assert batched[1].failure == lost
    for outcome, alone in ((batched[0], prepared[0]), (batched[2], prepared[2])):
        expected = predictor.run(alone, keep_patches=False)
        for view, result in expected.views.items():
            np.testing.assert_allclose(
                outcome.result.views[view].y_fusion, result.y_fusion, atol=1e-5, rtol=0
            )
            np.testing.assert_allclose(
                outcome.result.views[view].saliency, result.saliency, atol=1e-5, rtol=0
            )


def _lost(key: str) -> Job:
    def load():
        raise ExamError(f"exam {key}: the files are gone")

    return Job(key, load)


@pytest.mark.parametrize("overlap", ["none", "threads"])
def test_batched_scoring_keeps_order_failures_and_timings_per_exam(predictor, dataset, overlap):
    exams = find_exams([dataset]).exams[:2]
    jobs = [exam_job(exams[0]), _lost("lost"), exam_job(exams[1])]  # a batch with a failure, then a short one
    alone = {outcome.key: outcome for outcome in score_jobs(predictor, jobs, "none", batch=1)}
    batched = list(score_jobs(predictor, jobs, overlap, workers=1, batch=2))
    assert [outcome.key for outcome in batched] == [job.key for job in jobs]
    assert batched[1].failure == Failure("lost", "load", "exam lost: the files are gone")
    for outcome in (batched[0], batched[2]):
        assert set(outcome.timings) >= {"read_s", "preprocess_s", "inference_s", "wait_s"}
        for view, result in alone[outcome.key].result.views.items():
            np.testing.assert_allclose(
                outcome.result.views[view].y_fusion, result.y_fusion, atol=1e-5, rtol=0
            )


def test_a_batched_run_is_cancelled_between_batches_and_inside_the_model(predictor, dataset):
    jobs = [exam_job(exam) for exam in find_exams([dataset]).exams[:4]]
    seen: list[str] = []
    for outcome in score_jobs(predictor, jobs, "threads", workers=1, cancelled=lambda: bool(seen), batch=2):
        seen.append(outcome.key)
    assert seen == [job.key for job in jobs[:2]]  # the first batch, then nothing
    calls = iter(range(100))
    inside = score_jobs(predictor, jobs, "none", cancelled=lambda: next(calls) >= 1, batch=2)
    assert list(inside) == []  # cancelled in the model's run: no outcome for the batch in hand


def test_operating_points_hit_their_targets():
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.3
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0, 1)
    for sensitivity, specificity, fraction in ((0.9, 0.8, 0.1), (0.98, 0.95, 0.02), (0.5, 0.5, 0.5)):
        points = choose_operating_points(labels, scores, sensitivity, specificity, fraction)
        normal, suspicious, top = points[LIKELY_NORMAL], points[HIGH_SUSPICION], points[FLAG_TOP]
        assert normal.sensitivity >= sensitivity
        assert suspicious.specificity >= specificity
        assert fraction - 1 / labels.size <= (scores >= top.threshold).mean() <= fraction  # no ties here
        assert metrics.operating_point(labels, scores, normal.threshold) == normal
        # The tightest thresholds: one step further misses the target.
        above = scores[scores > normal.threshold].min()
        assert metrics.operating_point(labels, scores, above).sensitivity < sensitivity
        below = scores[scores < suspicious.threshold].max()
        assert metrics.operating_point(labels, scores, below).specificity < specificity
    with pytest.raises(CalibrationError, match="malignant and non-malignant"):
        choose_operating_points(np.ones(5, bool), np.linspace(0, 1, 5), 0.9, None)
    with pytest.raises(CalibrationError, match="lies in"):
        choose_operating_points(labels, scores, 1.5, None)
    with pytest.raises(CalibrationError, match="flag_fraction"):
        choose_operating_points(labels, scores, None, None, 0.0)


def _synthetic_calibration(seed: int) -> Calibration:
    """A calibration set of 2000 exams (one breast each) whose scores overstate the true risk."""
    rng = np.random.default_rng(seed)
    risk = rng.beta(1, 6, 2000)
    labels, scores = rng.random(risk.size) < risk, np.sqrt(risk)
    points = choose_operating_points(labels, scores, 0.9, 0.8, 0.1)
    site = SiteCalibration(
        fit_calibration(labels, scores), fit_calibration(labels, scores), Deciles.of(scores)
    )
    targets = {LIKELY_NORMAL: 0.9, HIGH_SUSPICION: 0.8, FLAG_TOP: 0.1}
    return Calibration(f"synthetic-{seed}", labels, scores, labels, scores, site, points, targets)


def test_a_site_calibration_and_its_three_operating_points_are_stored_and_replaced(store):
    first, second = _synthetic_calibration(1), _synthetic_calibration(2)
    with store.session() as session:
        assert stored_calibration(session, "model-a") is None
        assert site_settings(session, "model-a") == SiteSettings(None, DEFAULT_THRESHOLD)
        save_calibration(session, "model-a", first)
        save_operating_points(session, "model-a", first)
    with store.session() as session:
        assert stored_calibration(session, "model-a") == first.site
        points = operating_points(session, "model-a")
        # Exported DICOM findings are the saliency regions above the high-suspicion threshold.
        assert site_settings(session, "model-a") == SiteSettings(first.site, points[HIGH_SUSPICION].threshold)
    assert {name: point.metric for name, point in points.items()} == {
        LIKELY_NORMAL: "sensitivity",
        HIGH_SUSPICION: "specificity",
        FLAG_TOP: "flag_fraction",
    }
    top = points[FLAG_TOP]
    assert (top.target, top.threshold) == (0.1, first.points[FLAG_TOP].threshold)
    assert top.flagged_fraction == (first.scores >= top.threshold).mean() <= 0.1
    with store.session() as session:
        save_calibration(session, "model-a", second)  # calibrating again replaces
        save_operating_points(session, "model-a", second)
        save_calibration(session, "model-b", first)
    with store.session() as session:
        assert session.scalar(select(func.count(ScoreCalibration.id))) == 2
        assert session.scalar(select(func.count(OperatingPoint.id))) == 3
        assert stored_calibration(session, "model-a") == second.site
        assert stored_calibration(session, "model-b") == first.site
        assert operating_points(session, "model-a")[FLAG_TOP].threshold == second.points[FLAG_TOP].threshold


def test_calibration_set_operating_points_are_stored_and_flag_the_worklist(store, predictor, dataset):
    calibration = calibrate(
        predictor, dataset / "manifest.csv", sensitivity=0.9, specificity=0.6, flag_fraction=0.34
    )
    assert calibration.labels.size == EXAMS
    assert 0 < calibration.labels.sum() < EXAMS
    assert calibration.breast_labels.size == 2 * EXAMS
    assert calibration.site.exam.cases == EXAMS
    assert calibration.site.deciles == Deciles.of(calibration.scores)
    for name, target, achieved in (
        (LIKELY_NORMAL, 0.9, lambda point: point.sensitivity),
        (HIGH_SUSPICION, 0.6, lambda point: point.specificity),
        (FLAG_TOP, 0.34, lambda point: 1 - (calibration.scores >= point.threshold).mean()),
    ):
        point = calibration.points[name]
        assert achieved(point) >= (target if name != FLAG_TOP else 1 - target)
        assert metrics.operating_point(calibration.labels, calibration.scores, point.threshold) == point
    key = predictor.identity.key
    with store.session() as session:
        save_operating_points(session, key, calibration)
        save_operating_points(session, key, calibration)  # recalibrating replaces
        save_calibration(session, key, calibration)
        assert session.scalar(select(func.count(OperatingPoint.id))) == 3
    run_triage(store, predictor, [dataset])
    with store.session() as session:
        points = operating_points(session, key)
        rows = worklist(session, key)
        suspicious = worklist(session, key, flags=[HIGH_SUSPICION])
    assert points[LIKELY_NORMAL].threshold == calibration.points[LIKELY_NORMAL].threshold
    for row in rows:
        assert row.flags == flags_for(row.score, points)
        assert (HIGH_SUSPICION in row.flags) == (row.score >= points[HIGH_SUSPICION].threshold)
        assert (LIKELY_NORMAL in row.flags) == (row.score < points[LIKELY_NORMAL].threshold)
        assert (FLAG_TOP in row.flags) == (row.score >= points[FLAG_TOP].threshold)
        assert row.probability == calibration.site.exam_probability(row.score)
        assert row.decile == calibration.site.decile(row.score)
    assert sum(FLAG_TOP in row.flags for row in rows) <= 0.34 * EXAMS
    assert max(row.decile for row in rows) == 10
    assert suspicious == [row for row in rows if HIGH_SUSPICION in row.flags]
    # The calibration set scored the same exams as the run: the same scores, so the targets hold.
    by_key = dict(zip(synthetic_exam_ids(dataset), calibration.scores, strict=True))
    assert {row.exam_id: row.score for row in rows} == by_key


def test_scored_exams_are_exported_and_an_export_failure_is_recorded(store, predictor, dataset, tmp_path):
    folder = tmp_path / "incoming"
    for name in ("exam_0000", "exam_0001"):
        shutil.copytree(dataset / name, folder / name)
    out = tmp_path / "dicom"
    shutil.copytree(dataset / "exam_0002", folder / "exam_0002")
    first = run_triage(store, predictor, [folder / "exam_0000", folder / "exam_0001"], dicom_out=out)
    assert (first.scored, first.failed) == (2, [])
    assert sorted(path.name.split("_")[0] for path in out.glob("cad-sr_*")) == ["cad-sr"] * 2
    exported = set(out.iterdir())
    assert len(exported) == 2 * (2 + 4 + 1)

    # The two exams are skipped (not exported again); the third cannot be written (a file is in the
    # way), stays scored and gets an export failure, and the run goes on.
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")
    second = run_triage(store, predictor, [folder], dicom_out=blocked)
    assert (second.scored, second.skipped) == (1, 2)
    (failure,) = second.failed
    assert failure.stage == "export"
    assert "blocked" in failure.error
    assert set(out.iterdir()) == exported
    with store.session() as session:
        (row,) = session.scalars(select(TriageFailure)).all()
        assert row.stage == "export"
        assert row.exam.exam_key == failure.key
    assert len(_runs_per_exam(store, predictor.identity.key)) == 3


def synthetic_exam_ids(dataset: Path) -> list[str]:
    from gmic_core.training.data import read_manifest

    return [exam.exam_id for exam in read_manifest(dataset / "manifest.csv")]


def test_the_commands(database_url, weights, dataset, tmp_path, capsys):
    model = ["--weights", str(weights), "--device", "cpu", "--db", database_url]
    assert main(["calibrate", str(dataset), *model]) == 0  # no target: the calibration alone
    assert "no operating point: give --sensitivity" in capsys.readouterr().out
    targets = ["--sensitivity", "0.9", "--specificity", "0.6", "--flag-fraction", "0.34", "--method", "platt"]
    assert main(["calibrate", str(dataset), *model, *targets]) == 0
    output = capsys.readouterr().out
    assert "likely_normal: threshold" in output
    assert "high_suspicion: threshold" in output
    assert "flag_top: threshold" in output
    assert "exam calibration: platt (held-out log loss isotonic " in output
    assert "breast calibration: platt" in output
    assert "decile edges of the raw exam score: " in output
    with open_store(database_url).session() as session:
        # the commands' default precision, "auto", resolved as every entry point resolves it
        key = Predictor.from_files([weights], device="cpu", precision="auto").identity.key
        site = stored_calibration(session, key)
    assert site is not None
    assert site.exam.calibrator.method == "platt"

    calibrated, uncalibrated = tmp_path / "calibrated.json", tmp_path / "uncalibrated.json"
    exam = str(dataset / "exam_0000")
    assert main(["predict", exam, *model, "--out", str(calibrated)]) == 0
    empty_db = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    assert main(["predict", exam, *model[:-1], empty_db, "--out", str(uncalibrated)]) == 0
    (result,) = json.loads(calibrated.read_text())["exams"]
    assert result["calibrated"] is True
    assert result["malignancy_probability"] == site.exam_probability(result["malignancy_score"])
    assert result["decile"] == site.decile(result["malignancy_score"])
    for breast in result["breasts"].values():
        assert breast["malignant_calibrated"] == site.breast_probability(breast["malignant"])
    (bare,) = json.loads(uncalibrated.read_text())["exams"]
    assert bare["calibrated"] is False
    assert "malignancy_probability" not in bare
    assert bare["malignancy_score"] == result["malignancy_score"]
    calibrated_csv = tmp_path / "calibrated.csv"
    assert main(["predict", exam, *model, "--out", str(calibrated_csv)]) == 0
    breast_row = list(csv.DictReader(calibrated_csv.open()))[-1]
    assert float(breast_row["malignant_calibrated"]) == site.breast_probability(
        float(breast_row["malignant_pred"])
    )
    assert int(breast_row["exam_decile"]) == result["decile"]
    folder = tmp_path / "incoming"
    shutil.copytree(dataset / "exam_0000", folder / "exam_0000")
    shutil.copytree(dataset / "exam_0001", folder / "exam_0001")
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 50)
    dicom = tmp_path / "dicom"
    # 3: broken.dcm failed, the two exams were scored
    assert main(["triage", str(folder), *model, "--overlap", "threads", "--dicom-out", str(dicom)]) == 3
    assert len(list(dicom.glob("cad-sr_*.dcm"))) == len(list(dicom.glob("sc_*.dcm"))) == 2
    captured = capsys.readouterr()
    assert "2 scored" in captured.err
    assert "0 skipped" in captured.err
    assert "1 failed" in captured.err
    assert "broken.dcm" in captured.err
    patient = pydicom.dcmread(folder / "exam_0000" / "L-CC.dcm").PatientName
    assert str(patient)
    assert str(patient) not in captured.err + captured.out

    assert main(["worklist", "--db", database_url, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = {"exam_id", "score", "calibrated", "probability", "decile", "flags", "status", "error"}
    assert [set(row) for row in rows] == [keys] * 3
    assert [row["status"] for row in rows] == ["scored", "scored", "failed"]
    assert [row["calibrated"] for row in rows] == [True, True, False]
    assert rows[0]["score"] >= rows[1]["score"]
    assert rows[0]["probability"] == site.exam_probability(rows[0]["score"])
    assert rows[0]["decile"] == site.decile(rows[0]["score"])
    assert rows[2]["exam_id"] is None
    assert "broken.dcm" in rows[2]["error"]
    assert main(["worklist", "--db", database_url, "--format", "csv", "--flag", "high_suspicion"]) == 0
    csv_lines = capsys.readouterr().out.strip().splitlines()
    assert csv_lines[0] == "rank,exam_id,score,probability,decile,flags,status,error"
    assert len(csv_lines) - 1 == sum(HIGH_SUSPICION in row["flags"] for row in rows)
    assert main(["worklist", "--db", database_url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:6] == ["#", "exam", "calibrated", "p", "1-10", "raw"]
    assert len(table) == 4
    with open_store(database_url).session() as session:
        session.execute(delete(ScoreCalibration))
    assert main(["worklist", "--db", database_url]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:4] == ["#", "exam", "score", "(uncalibrated)"]
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["worklist", "--db", empty]) == 2
    assert "no triage run" in capsys.readouterr().err


def test_progress_and_summary_text(predictor, dataset, tmp_path):
    class Log:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    log = Log()
    bar = ProgressBar(log)
    bar(TriageProgress(done=1, total=4, scored=1, failed=0, elapsed_s=2.0))
    bar(TriageProgress(done=2, total=4, scored=1, failed=1, elapsed_s=4.0))  # throttled
    bar(TriageProgress(done=4, total=4, scored=3, failed=1, elapsed_s=8.0))
    lines = log.text.splitlines()
    assert len(lines) == 2
    assert "1/4 exams" in lines[0]
    assert "0.50 exams/s" in lines[0]
    assert "ETA 00:06" in lines[0]
    assert "4/4 exams, 1 failed" in lines[1]
    assert "ETA 00:00" in lines[1]
    store = open_store(f"sqlite:///{tmp_path / 'gmic.sqlite3'}")
    summary = run_triage(store, predictor, [dataset / "exam_0000", dataset / "masks"])
    text = format_summary(summary)
    assert text.startswith("triage finished in ")
    assert "1 exams found, 1 scored" in text
    assert "0 skipped" in text
    assert "1 failed" in text
    assert "failed at scan:" in text
    assert "no mammograms found" in text


# What the exams are: a corrupt copy never stands in for a valid one, a single file is a path, images
# kept but not scored are listed with the reason; in prediction and triage alike.


@dicom_factory.READS_DAMAGED_FILES
@pytest.mark.parametrize("kind", dicom_factory.CORRUPTIONS)
@pytest.mark.parametrize("name", ["0_copy.dcm", "z_copy.dcm"], ids=["sorts first", "sorts last"])
def test_a_corrupt_copy_never_stands_in_for_a_valid_one(store, predictor, dataset, tmp_path, kind, name):
    folder = tmp_path / "exam"
    shutil.copytree(dataset / "exam_0000", folder)
    ((clean, _),) = predict_paths(predictor, [folder]).results
    dicom_factory.corrupt_copy(folder / "L-CC.dcm", folder / name, kind)

    run = predict_paths(predictor, [folder])
    ((result, _),) = run.results
    assert result.malignancy_score == clean.malignancy_score
    assert set(result.views) == set(View)
    summary = run_triage(store, predictor, [folder])
    assert summary.scored == 1
    with store.session() as session:
        stored = load_exam_result(session, clean.exam_id, predictor.identity.key)
    assert stored.malignancy_score == pytest.approx(clean.malignancy_score)
    # A copy whose header cannot be read is reported; one that only fails to decode is passed over.
    reported = [] if kind == "encoded pixels" else [name]
    assert [Path(error["path"]).name for error in run.errors] == reported
    assert [Path(failure.key).name for failure in summary.failed] == reported


def test_a_single_file_is_an_exam_and_unscored_images_are_listed(store, predictor, dataset, tmp_path):
    folder = tmp_path / "exam"
    shutil.copytree(dataset / "exam_0001", folder)
    spot = dicom_factory.relabelled(pydicom.dcmread(folder / "R-CC.dcm"), SeriesDescription="R CC SPOT")
    dicom_factory.save(spot, folder / "spot.dcm")

    single = predict_paths(predictor, [folder / "R-MLO.dcm"])
    ((result, exam),) = single.results
    assert (set(result.views), exam.missing_views) == ({View.R_MLO}, [View.R_CC, View.L_CC, View.L_MLO])
    assert single.errors == []
    summary = run_triage(store, predictor, [folder / "R-MLO.dcm"])
    assert (summary.exams_found, summary.scored, summary.failed) == (1, 1, [])

    whole = predict_paths(predictor, [folder])
    reason = f"{folder / 'spot.dcm'}: not scored: spot compression view, not a standard screening view"
    assert whole.errors == [{"path": str(folder / "spot.dcm"), "exam_id": exam.exam_id, "error": reason}]
    summary = run_triage(store, predictor, [folder])
    assert [(failure.key, failure.stage, failure.error) for failure in summary.failed] == [
        (str(folder / "spot.dcm"), "scan", reason)
    ]
    with store.session() as session:
        assert session.scalar(
            select(TriageFailure.error).where(TriageFailure.path == str(folder / "spot.dcm"))
        )


def test_a_run_on_reduced_levels_is_stored_under_its_own_key(database_url, store, weights, tmp_path):
    """``gmic triage --reduced-levels``: the eighth-size model reads the JPEG 2000 views at level 3,
    stores its scores under a key that says so, and the stored result rebuilds that key; ``gmic
    calibrate --reduced-levels`` scores its calibration set the same way and stores the site's
    calibration under that key."""
    synthetic.write_dataset(
        tmp_path / "exams", exams=EXAMS, seed=3, size=(1024, 832), malignant_fraction=0.4
    )  # JPEG 2000 lossless
    code = main(
        [
            "triage",
            str(tmp_path / "exams"),
            "--weights",
            str(weights),
            "--reduced-levels",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--db",
            database_url,
        ]
    )
    assert code == 0
    predictor = Predictor.from_files([weights], device="cpu", reduced_levels=True)
    key = predictor.identity.key
    assert key.endswith("|j2k-level3")
    assert key == Predictor.from_files([weights], device="cpu").identity.key + "|j2k-level3"
    exam = find_exams([tmp_path / "exams"]).exams[0]
    with store.session() as session:
        stored = load_exam_result(session, exam.exam_id, key)
    assert stored.model.key == key
    direct = predictor.predict_exam(exam, keep_patches=False)
    assert stored.malignancy_score == pytest.approx(direct.malignancy_score, abs=1e-6)
    first = read_manifest(tmp_path / "exams" / "manifest.csv")[0]  # the calibration set reads level 3 too
    assert all(view.grid is not None for view in manifest_job(first, predictor.decoding).load().values())
    assert all(view.grid is None for view in manifest_job(first).load().values())
    model = ["--weights", str(weights), "--device", "cpu", "--precision", "fp32", "--db", database_url]
    assert (
        main(["calibrate", str(tmp_path / "exams"), *model, "--reduced-levels", "--flag-fraction", "0.34"])
        == 0
    )
    with store.session() as session:
        assert stored_calibration(session, key) is not None
        points = session.scalars(select(OperatingPoint).where(OperatingPoint.model_key == key)).all()
        assert [point.name for point in points] == ["flag_top"]
        assert stored_calibration(session, key.removesuffix("|j2k-level3")) is None
