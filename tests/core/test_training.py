"""The training procedure: loss, epochs, augmentation, resumption, evaluation."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import main
from gmic_core.errors import ExamError
from gmic_core.imaging.views import View
from gmic_core.inference import Predictor
from gmic_core.model import GMIC, GMICOutput, load_checkpoint
from gmic_core.training.config import TrainingConfig
from gmic_core.training.data import ManifestImage, balanced_epoch, read_manifest, read_manifests
from gmic_core.training.evaluate import by_lesion
from gmic_core.training.loop import breast_aucs, train
from gmic_core.training.loss import gmic_loss

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Six small synthetic exams (train and val splits)."""
    folder = tmp_path_factory.mktemp("synthetic")
    assert (
        main(
            [
                "synth",
                str(folder),
                "--exams",
                "6",
                "--seed",
                "11",
                "--size",
                "1024",
                "832",
                "--transfer-syntax",
                "explicit-little",
            ]
        )
        == 0
    )
    return folder / "manifest.csv"


def _config(tmp_path, manifest, **optimisation) -> TrainingConfig:
    return TrainingConfig.from_dict(
        {
            "manifest": str(manifest),
            "output_dir": str(tmp_path / "run"),
            "device": "cpu",
            "model": {"input_scale": 0.125},
            "optimisation": {
                "epochs": 2,
                "batch_size": 2,
                "learning_rate": 1e-4,
                "checkpoint_every": 2,
                **optimisation,
            },
        }
    )


def test_loss_is_equation_13_by_hand():
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    output = GMICOutput(
        saliency=torch.full((2, 2, 3, 2), 0.25),
        y_global=torch.tensor([[0.8, 0.3], [0.4, 0.6]]),
        roi_locations=torch.zeros(2, 1, 2, dtype=torch.long),
        patches=torch.zeros(2, 1, 4, 4),
        attention=torch.ones(2, 1),
        y_local=torch.tensor([[0.7, 0.2], [0.1, 0.9]]),
        y_fusion=torch.tensor([[0.9, 0.1], [0.2, 0.7]]),
    )
    beta = 0.01

    def bce(p, y):
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    expected = 0.0
    for n in range(2):
        for c in range(2):
            y = float(labels[n, c])
            for prediction in (output.y_global, output.y_local, output.y_fusion):
                expected += bce(float(prediction[n, c]), y)
            expected += beta * 0.25 * 6  # L1 norm of a 3 x 2 map of 0.25
    terms = gmic_loss(output, labels, beta)
    assert float(terms.total) == pytest.approx(expected / 2, rel=1e-6)
    assert float(terms.saliency_l1) == pytest.approx(0.25 * 12)


def test_epoch_has_every_positive_and_as_many_negatives(dataset):
    exams = read_manifest(dataset)
    positives = {exam.exam_id for exam in exams if exam.has_finding}
    negatives = {exam.exam_id for exam in exams if not exam.has_finding}
    assert positives
    assert negatives
    for epoch in range(3):
        chosen = [exam.exam_id for exam in balanced_epoch(exams, epoch, seed=0)]
        assert len(chosen) == len(set(chosen))
        assert positives <= set(chosen)
        assert len(set(chosen) & negatives) == min(len(positives), len(negatives))
    assert [e.exam_id for e in balanced_epoch(exams, 1, 0)] == [
        e.exam_id for e in balanced_epoch(exams, 1, 0)
    ]


def test_a_run_combines_manifests_of_several_folders(dataset, tmp_path):
    """A config's manifest may be a list: each resolves its files against its own folder, and an exam in
    two of them is refused."""
    with dataset.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    exam_ids = list(dict.fromkeys(row["exam_id"] for row in rows))
    first, second = tmp_path / "first" / "manifest.csv", tmp_path / "second" / "part.csv"
    for path, exams in ((first, exam_ids[:2]), (second, exam_ids[2:])):
        path.parent.mkdir()
        with path.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                if row["exam_id"] in exams:
                    writer.writerow(
                        {
                            **row,
                            "file": os.path.relpath(dataset.parent / row["file"], path.parent),
                            "mask_benign": "",
                            "mask_malignant": "",
                        }
                    )
    config = TrainingConfig.from_dict(
        {"manifest": ["first/manifest.csv", str(second)], "output_dir": "run"}, base=tmp_path
    )
    assert config.manifest == (first, second)
    combined = read_manifests(config.manifest)
    assert [exam.exam_id for exam in combined] == exam_ids
    original = {exam.exam_id: exam for exam in read_manifest(dataset)}
    for exam in combined:
        assert {view: image.path.resolve() for view, image in exam.images.items()} == {
            view: image.path.resolve() for view, image in original[exam.exam_id].images.items()
        }
        assert all(image.path.is_file() for image in exam.images.values())
    with pytest.raises(ExamError, match=f"exam {exam_ids[0]} is listed in .*first.manifest.csv too"):
        read_manifests([first, dataset])


def test_patches_are_rotated_in_training_only(dataset, tmp_path, monkeypatch):
    seen = []
    forward = GMIC.forward

    def recording(self, image, patch_rotations=None):
        seen.append((self.training, patch_rotations is not None))
        return forward(self, image, patch_rotations)

    monkeypatch.setattr(GMIC, "forward", recording)
    train(_config(tmp_path, dataset, epochs=1), log=lambda _: None)
    assert (True, True) in seen  # training steps rotate
    assert all(rotated == training for training, rotated in seen)  # validation does not


def test_training_lowers_the_loss_and_writes_a_usable_checkpoint(dataset, tmp_path):
    config = _config(tmp_path, dataset, epochs=4, learning_rate=3e-4)
    config = TrainingConfig.from_dict({**config.to_dict(), "augmentation": {"window_noise": False}})
    result = train(config, log=lambda _: None)
    rows = list(csv.DictReader((config.output_dir / "metrics.csv").open()))
    losses = [float(row["loss"]) for row in rows]
    assert len(losses) == 4
    assert losses[-1] < losses[0]
    loaded = load_checkpoint(result.best_checkpoint)
    assert loaded.config.input_scale == 0.125
    assert loaded.training["epoch"] >= 1
    exam_folder = dataset.parent / "exam_0000"
    out = tmp_path / "predictions.json"
    assert (
        main(["predict", str(exam_folder), "--weights", str(result.best_checkpoint), "--out", str(out)]) == 0
    )
    (exam,) = json.loads(out.read_text())["exams"]
    assert len(exam["views"]) == 4


def test_resuming_continues_from_the_saved_step(dataset, tmp_path):
    uninterrupted = train(_config(tmp_path / "a", dataset), log=lambda _: None)
    messages = []
    partial = train(_config(tmp_path / "b", dataset), log=messages.append, stop_after_steps=3)
    assert partial.steps_done == 3
    resumed = train(_config(tmp_path / "b", dataset), log=messages.append)
    assert any("resuming" in message and "step 3" in message for message in messages)
    assert resumed.steps_done == uninterrupted.steps_done
    a = load_checkpoint(uninterrupted.last_checkpoint).model.state_dict()
    b = load_checkpoint(resumed.last_checkpoint).model.state_dict()
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, msg=name)


def _planted(monkeypatch, manifest) -> None:
    """The predictor's breast scores replaced by ones whose AUCs are known: malignant = the label
    (AUC 1), benign = 1 - the label (AUC 0)."""
    labels = {exam.exam_id: exam for exam in read_manifest(manifest)}
    predict = Predictor.predict

    def planted(self, exam_id, images, **options):
        result = predict(self, exam_id, images, **options)
        breasts = {}
        for side, breast in result.breasts.items():
            benign, malignant = labels[exam_id].breast_labels(side)
            breasts[side] = dataclasses.replace(breast, benign=1.0 - benign, malignant=float(malignant))
        return dataclasses.replace(result, breasts=breasts)

    monkeypatch.setattr(Predictor, "predict", planted)


def test_evaluate_command(dataset, tmp_path, monkeypatch):
    _planted(monkeypatch, dataset)
    model = GMIC(_config(tmp_path, dataset).model.gmic_config())
    from gmic_core.model import ModelCard, save_checkpoint

    weights = save_checkpoint(tmp_path / "m.pt", model, ModelCard("untrained", "0", "none", "tests"))
    out = tmp_path / "evaluation"
    assert (
        main(["evaluate", str(weights), str(dataset), "--out", str(out), "--bootstrap", "50", "--baselines"])
        == 0
    )
    report = json.loads((out / "evaluation.json").read_text())
    breast = report["breast"]["malignant"]
    assert breast["auc"] == 1.0
    assert report["breast"]["benign"]["auc"] == 0.0
    assert breast["auc_ci"][0] <= breast["auc_ci"][1]
    assert "pr_auc" in breast
    assert "auc" in report["breast"]["benign"]
    assert report["dsc"]["malignant"]["images"] > 0
    assert 0 <= report["dsc"]["malignant"]["soft"] <= 1
    assert 0 <= report["dsc"]["malignant"]["at_0_5"] <= 1
    for name in ("roc_breast.png", "pr_breast.png", "roc_image.png", "pr_image.png"):
        assert (out / name).stat().st_size > 1000
    assert set(report["baselines"]) == {"max_pixel", "mean_intensity", "blob_count"}
    summary = (out / "evaluation.md").read_text()
    assert f"| breast | malignant | {breast['n']} ({breast['positives']}) | {breast['auc']:.3f}" in summary
    assert "| baseline: blob count | malignant |" in summary
    for name in ("benign", "malignant"):
        entry = report["calibration"][name]
        bins = entry["bins"]
        assert sum(bins["counts"]) == entry["n"] == breast["n"]
        gaps = [
            count * abs(observed - predicted)
            for count, observed, predicted in zip(
                bins["counts"], bins["observed"], bins["predicted"], strict=True
            )
            if count
        ]
        assert entry["ece"] == pytest.approx(sum(gaps) / entry["n"])
        assert 0 <= entry["brier"] <= 1
        assert f"| {name} | {entry['n']} | {entry['ece']:.3f} | {entry['brier']:.3f} |" in summary
    assert (out / "reliability_breast.png").stat().st_size > 1000
    breasts_holding: dict[str, set] = {}
    for exam in read_manifest(dataset):
        for view, image in exam.images.items():
            for kind in image.lesions:
                breasts_holding.setdefault(kind, set()).add((exam.exam_id, view.laterality))
    reported = {**report["by_lesion"]["benign"], **report["by_lesion"]["malignant"]}
    assert reported
    for kind, entry in reported.items():
        assert entry["breasts"] == len(breasts_holding[kind])
        assert f"| {kind} | {entry['breasts']} | {entry['auc']:.3f}" in summary
    for baseline in report["baselines"].values():
        assert baseline["malignant"]["n"] == breast["n"]
        assert 0 <= baseline["malignant"]["auc"] <= 1


def test_evaluation_per_kind_of_finding_against_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rows = [
        ((0, 1), (0.1, 0.9)),  # spiculated mass
        ((0, 1), (0.2, 0.3)),  # spiculated mass
        ((1, 1), (0.8, 0.7)),  # pleomorphic calcifications and a benign round mass
        ((1, 0), (0.7, 0.4)),  # round mass
        ((0, 0), (0.3, 0.5)),
        ((0, 0), (0.2, 0.1)),
        ((1, 0), (0.6, 0.2)),  # coarse calcifications
        ((1, 1), (0.3, 0.6)),  # coarse calcifications beside a spiculated mass
    ]
    lesions = [
        ("mass:spiculated",),
        ("mass:spiculated",),
        ("calcifications:fine-pleomorphic", "mass:round"),
        ("mass:round",),
        (),
        (),
        ("calcifications:coarse",),
        ("calcifications:coarse", "mass:spiculated"),
    ]
    dice = {
        "benign": {"soft": [0.5], "at_0_5": [0.6]},
        "malignant": {"soft": [0.2, 0.4], "at_0_5": [0.0, 1.0]},
    }
    dice_lesions = {"benign": [("mass:round",)], "malignant": [("mass:spiculated",), ("mass:spiculated",)]}
    report = by_lesion(rows, lesions, dice, dice_lesions, resamples=20)
    # Coarse calcifications and round masses also occur in breasts without a malignant finding,
    # spiculated masses in breasts without a benign one; fine pleomorphic calcifications only beside
    # a benign finding, so they cannot be told apart from it.
    assert set(report["malignant"]) == {"mass:spiculated"}
    assert set(report["benign"]) == {"mass:round", "calcifications:coarse"}
    spiculated = report["malignant"]["mass:spiculated"]
    chosen = [0, 1, 3, 4, 5, 6, 7]
    expected = roc_auc_score([rows[i][0][1] for i in chosen], [rows[i][1][1] for i in chosen])
    assert spiculated["breasts"] == 3
    assert spiculated["auc"] == pytest.approx(expected)
    assert spiculated["auc_ci"][0] <= spiculated["auc_ci"][1]
    assert (spiculated["dsc_images"], spiculated["dsc_soft"], spiculated["dsc_at_0_5"]) == (
        2,
        pytest.approx(0.3),
        0.5,
    )
    coarse = report["benign"]["calcifications:coarse"]
    assert (coarse["breasts"], coarse["dsc_images"], coarse["dsc_soft"]) == (2, 0, None)


def test_validation_aucs_per_breast_and_per_kind_of_finding() -> None:
    breasts = [  # exam, malignant label, findings, the CC and MLO malignant scores
        ("a", 1, ("mass:irregular",), (0.2, 0.4)),
        ("b", 1, ("calcifications:fine-pleomorphic",), (0.9, 0.7)),
        ("c", 0, (), (0.5, 0.5)),
        ("d", 0, (), (0.1, 0.3)),
    ]
    images = [
        ManifestImage(exam, view, Path(f"{exam}/{view.value}.dcm"), "val", 0, label, lesions=lesions)
        for exam, label, lesions, _ in breasts
        for view in (View.L_CC, View.L_MLO)
    ]
    scores = np.array([(0.0, score) for *_, pair in breasts for score in pair])
    aucs = breast_aucs(images, scores)
    assert aucs["malignant"] == pytest.approx(0.75)  # breast scores 0.3 and 0.8 against 0.5 and 0.2
    assert aucs["malignant mass:irregular"] == pytest.approx(0.5)
    assert aucs["malignant calcifications:fine-pleomorphic"] == pytest.approx(1.0)
    assert np.isnan(aucs["benign"])
    assert len(aucs) == 4


def _inside(path: str | Path) -> Path:
    """``path`` made absolute, without following links (data/ may link to another disk)."""
    return Path(os.path.normpath(Path(path).absolute()))


@pytest.mark.parametrize(
    "path", sorted((REPOSITORY / "configs" / "demo").glob("*.toml")), ids=lambda path: path.name
)
def test_the_recorded_training_configs_load(path: Path) -> None:
    """Each config in configs/demo/ made a stage of the shipped demo model, and the recipes in
    its comments run it from the repository: it must stay a valid config whose data and runs are the
    repository's data/ and runs/ folders."""
    config = TrainingConfig.from_toml(path)
    assert all(_inside(manifest).parents[1] == REPOSITORY / "data" for manifest in config.manifest)
    assert _inside(config.output_dir).parent == REPOSITORY / "runs"
    if config.model.init_from:
        assert REPOSITORY / "runs" in _inside(config.model.init_from).parents


def test_the_demo_chain_runs_from_an_empty_folder(tmp_path: Path) -> None:
    """scripts/train_demo.py --quick: every stage of configs/demo/ trains from the one before, the
    last is evaluated and packaged into the work folder, never over the shipped demo model."""
    shipped = (REPOSITORY / "resources" / "models" / "gmic-demo-r18.pt").read_bytes()
    work = tmp_path / "chain"
    completed = subprocess.run(
        [
            sys.executable,
            str(REPOSITORY / "scripts" / "train_demo.py"),
            str(work),
            "--quick",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        },
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.strip() == str(work / "model" / "gmic-demo-r18.pt")
    configs = sorted((REPOSITORY / "configs" / "demo").glob("*.toml"))
    runs = {TrainingConfig.from_toml(config).output_dir.name for config in configs}
    assert {path.parent.name for path in (work / "runs").glob("*/last.pt")} == runs
    stages = [line for line in completed.stderr.splitlines() if line.startswith("train ")]
    assert len(stages) == len(configs)
    packaged = load_checkpoint(work / "model" / "gmic-demo-r18.pt")
    assert packaged.config.input_scale == 0.125
    assert "quick" in packaged.card.version
    assert packaged.card.performance["test_exams"] == 6
    assert (work / "model" / "gmic-demo-r18.md").is_file()
    assert (REPOSITORY / "resources" / "models" / "gmic-demo-r18.pt").read_bytes() == shipped
