"""The training procedure of paper section 3.2.

Each epoch takes every exam with a finding plus as many random negative exams, trains on all their
views with window and patch-rotation augmentation and the loss of eq. 13 (Adam), then measures the
breast-level validation AUCs; the epoch with the best malignant AUC is kept as ``best.pt``. All
randomness derives from (seed, epoch, step), and ``last.pt`` is written every few steps, so an
interrupted run resumes where it stopped and gives the same result as an uninterrupted one.
"""

from __future__ import annotations

import csv
import math
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gmic_core.errors import CheckpointError, DatasetError, UsageError
from gmic_core.imaging.views import Laterality
from gmic_core.inference import autocast, select_device
from gmic_core.metrics import roc_auc
from gmic_core.model import GMIC, ModelCard, load_checkpoint, save_checkpoint
from gmic_core.preprocess import WindowNoise
from gmic_core.training.config import TrainingConfig
from gmic_core.training.data import (
    CropCache,
    GMICDataset,
    ManifestExam,
    ManifestImage,
    SeededOrder,
    balanced_epoch,
    epoch_images,
    fill_cache,
    read_manifests,
)
from gmic_core.training.evaluate import CLASSES, findings
from gmic_core.training.loss import gmic_loss

METRIC_COLUMNS = (
    "epoch", "steps", "images", "loss", "global_bce", "local_bce", "fusion_bce", "saliency_l1",
    "val_malignant_auc", "val_benign_auc", "seconds", "images_per_second",
)  # fmt: skip
INIT_PARTS = {
    "global": ("global_network", "saliency_head"),
    "local": ("local_network", "attention", "local_classifier"),
    "fusion": ("fusion_head",),
}


@dataclass(frozen=True)
class TrainingResult:
    best_checkpoint: Path | None
    last_checkpoint: Path
    best_malignant_auc: float
    epochs_done: int
    steps_done: int


def train(
    config: TrainingConfig,
    log: Callable[[str], None] = print,
    stop_after_steps: int | None = None,
    prepare_only: bool = False,
) -> TrainingResult:
    """Train (or resume) the run ``config`` describes; ``stop_after_steps`` ends it early after that
    many optimisation steps in this call, as an interruption would (``last.pt`` keeps the place).
    With a ``cache_dir``, the images are first cropped into it in ``num_workers`` processes;
    ``prepare_only`` stops there (runs that share the folder then skip the work)."""
    output = config.output_dir
    output.mkdir(parents=True, exist_ok=True)
    device = select_device(config.device)
    torch.manual_seed(config.seed)
    model = GMIC(config.model.gmic_config())
    _initialise(model, config)
    model.to(device)
    optimiser = torch.optim.Adam(
        model.parameters(),
        lr=config.optimisation.learning_rate,
        weight_decay=config.optimisation.weight_decay,
    )
    state = _resume(output / "last.pt", model, optimiser, log)
    exams = read_manifests(config.manifest)
    train_exams = [exam for exam in exams if exam.split == "train"]
    val_exams = [exam for exam in exams if exam.split == "val"]
    if not train_exams:
        raise DatasetError(f"{', '.join(map(str, config.manifest))}: no exam in the train split")
    cache = CropCache(model.config, config.cache_dir)
    if config.cache_dir is not None:
        prepared = fill_cache(epoch_images(train_exams + val_exams), cache, config.num_workers)
        if prepared:
            log(f"cropped {prepared} images into {config.cache_dir}")
    if prepare_only:
        return _result(output, state)
    augmentation = config.augmentation
    noise = (
        WindowNoise(
            augmentation.max_location_noise, augmentation.max_location_noise, augmentation.max_size_noise
        )
        if augmentation.window_noise
        else None
    )
    train_images = epoch_images(train_exams)
    index_of = {image.path: index for index, image in enumerate(train_images)}
    dataset = GMICDataset(train_images, cache, noise)
    steps_this_call = 0
    for epoch in range(state["epoch"], config.optimisation.epochs):
        order = epoch_images(balanced_epoch(train_exams, epoch, config.seed))
        keys = [
            (index_of[image.path], _item_seed(config.seed, epoch, position))
            for position, image in enumerate(order)
        ]
        batch_size = config.optimisation.batch_size
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=SeededOrder(keys, start=state["step"] * batch_size),
            num_workers=config.num_workers,
            pin_memory=device.type == "cuda",
        )
        totals: dict[str, float] = defaultdict(float)
        started = time.perf_counter()
        steps = math.ceil(len(keys) / batch_size)
        model.train()
        first_step = state["step"]
        for step, (images, labels, _) in enumerate(loader, start=first_step):
            images, labels = images.to(device), labels.to(device)
            rotations = None
            if augmentation.rotate_patches:
                generator = torch.Generator().manual_seed(_item_seed(config.seed, epoch, step) + 1)
                rotations = torch.randint(0, 4, (images.shape[0], model.config.num_rois), generator=generator)
            with autocast(device, "bf16" if device.type == "cuda" else "fp32"):  # bf16 needs no loss scaling
                predictions = model(images, rotations.to(device) if rotations is not None else None)
            # in fp32, outside autocast: CUDA autocast refuses BCE
            terms = gmic_loss(predictions, labels, config.optimisation.beta)
            optimiser.zero_grad(set_to_none=True)
            terms.total.backward()
            optimiser.step()
            for name in ("total", "global_bce", "local_bce", "fusion_bce", "saliency_l1"):
                totals[name] += float(getattr(terms, name).detach()) * images.shape[0]
            totals["images"] += images.shape[0]
            state["step"], state["global_step"] = step + 1, state["global_step"] + 1
            steps_this_call += 1
            elapsed = time.perf_counter() - started
            done = step + 1 - first_step
            _progress(
                epoch,
                step + 1,
                steps,
                totals["total"] / totals["images"],
                totals["images"] / elapsed,
                elapsed / done,
            )
            interrupted = stop_after_steps is not None and steps_this_call >= stop_after_steps
            if interrupted or (step + 1) % config.optimisation.checkpoint_every == 0:
                _save_last(output / "last.pt", model, optimiser, config, state)
            if interrupted:
                sys.stderr.write("\n")
                log(
                    f"stopped after {steps_this_call} steps (epoch {epoch + 1}, step {step + 1}); run again to resume"
                )
                return _result(output, state)
        sys.stderr.write("\n")
        seconds = time.perf_counter() - started
        val = (
            validate(model, val_exams, cache, device, config.optimisation.batch_size, config.num_workers)
            if val_exams
            else {}
        )
        row = {
            "epoch": epoch + 1,
            "steps": steps,
            "images": int(totals["images"]),
            "loss": totals["total"] / max(totals["images"], 1),
            **{
                name: totals[name] / max(totals["images"], 1)
                for name in ("global_bce", "local_bce", "fusion_bce", "saliency_l1")
            },
            "val_malignant_auc": val.get("malignant", float("nan")),
            "val_benign_auc": val.get("benign", float("nan")),
            "seconds": seconds,
            "images_per_second": totals["images"] / seconds if seconds else float("nan"),
        }
        _append_metrics(output / "metrics.csv", row)
        log(
            f"epoch {epoch + 1}: loss {row['loss']:.4f}, validation AUC malignant {row['val_malignant_auc']:.3f} "
            f"benign {row['val_benign_auc']:.3f}, {row['images_per_second']:.2f} images/s"
        )
        by_finding = {key: value for key, value in val.items() if key not in CLASSES}
        if by_finding:
            log("  by finding: " + ", ".join(f"{key} {value:.3f}" for key, value in by_finding.items()))
        if math.isnan(row["val_malignant_auc"]):
            if state["best"] == float("-inf"):  # nothing to rank by yet: the latest epoch stands in
                _save_best(output / "best.pt", model, config, epoch + 1, row)
        elif row["val_malignant_auc"] > state["best"]:
            state["best"] = row["val_malignant_auc"]
            _save_best(output / "best.pt", model, config, epoch + 1, row)
        state["epoch"], state["step"] = epoch + 1, 0
        _save_last(output / "last.pt", model, optimiser, config, state)
    return _result(output, state)


def _item_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


def _progress(epoch: int, step: int, steps: int, loss: float, rate: float, seconds_per_step: float) -> None:
    width = 30
    filled = int(width * step / max(steps, 1))
    eta = (steps - step) * seconds_per_step
    sys.stderr.write(
        f"\repoch {epoch + 1} [{'#' * filled}{'.' * (width - filled)}] {step}/{steps} "
        f"loss {loss:.4f} {rate:.2f} img/s eta {eta:.0f} s"
    )
    sys.stderr.flush()


@torch.inference_mode()
def validate(
    model: GMIC,
    exams: list[ManifestExam],
    cache: CropCache,
    device: torch.device,
    batch_size: int,
    workers: int = 0,
) -> dict[str, float]:
    """Breast-level validation AUCs (mean of each breast's CC and MLO fusion predictions), no
    augmentation (paper section 3.2)."""
    model.eval()
    images = epoch_images(exams)
    dataset = GMICDataset(images, cache)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=[(i, -1) for i in range(len(images))], num_workers=workers
    )
    scores = np.zeros((len(images), 2))
    for batch, _, indices in loader:
        scores[indices.numpy()] = model(batch.to(device)).y_fusion.float().cpu().numpy()
    model.train()
    return breast_aucs(images, scores)


def breast_aucs(images: list[ManifestImage], scores: np.ndarray) -> dict[str, float]:
    """AUC per class over breasts, a breast's score being the mean of its views' scores; where the
    manifest names the findings, also per class and kind of finding (keys like ``"malignant
    mass:irregular"``, as in the evaluation's ``by_lesion``)."""
    grouped: dict[tuple[str, Laterality], list[int]] = defaultdict(list)
    for index, image in enumerate(images):
        grouped[(image.exam_id, image.view.laterality)].append(index)
    labels = np.array([images[indices[0]].labels for indices in grouped.values()])
    breast_scores = np.array([scores[indices].mean(axis=0) for indices in grouped.values()])
    aucs = {}
    for column, name in enumerate(CLASSES):
        has_both = 0 < labels[:, column].sum() < len(labels)
        aucs[name] = roc_auc(labels[:, column], breast_scores[:, column]) if has_both else float("nan")
    lesions = [images[indices[0]].lesions for indices in grouped.values()]
    for column, kind, _, chosen in findings(labels, lesions):
        aucs[f"{CLASSES[column]} {kind}"] = roc_auc(labels[chosen, column], breast_scores[chosen, column])
    return aucs


def _initialise(model: GMIC, config: TrainingConfig) -> None:
    """Copy the chosen parts from a checkpoint, for fine-tuning (e.g. from a published model)."""
    if not config.model.init_from:
        return
    source = load_checkpoint(config.model.init_from, top_t=model.config.top_t).model
    for part in config.model.init_parts:
        if part not in INIT_PARTS:
            raise UsageError(f"init_parts: unknown part {part!r}, choose from {sorted(INIT_PARTS)}")
        for name in INIT_PARTS[part]:
            getattr(model, name).load_state_dict(getattr(source, name).state_dict(), strict=True)


def _resume(
    path: Path, model: GMIC, optimiser: torch.optim.Optimizer, log: Callable[[str], None]
) -> dict[str, Any]:
    fresh = {"epoch": 0, "step": 0, "global_step": 0, "best": float("-inf")}
    if not path.exists():
        return fresh
    checkpoint = load_checkpoint(path)
    training = checkpoint.training or {}
    if "optimiser" not in training or checkpoint.config != model.config:
        raise CheckpointError(
            f"{path}: not a resumable checkpoint of this run's model; move it away to start afresh"
        )
    model.load_state_dict(checkpoint.model.state_dict())
    optimiser.load_state_dict(training["optimiser"])
    state = {key: training[key] for key in fresh}
    log(f"resuming from {path}: epoch {state['epoch'] + 1}, step {state['step']}")
    return state


def _card(config: TrainingConfig, performance: dict[str, float]) -> ModelCard:
    card = config.card
    return ModelCard(
        name=card.name,
        version=card.version,
        training_data=card.training_data or f"manifest {', '.join(path.name for path in config.manifest)}",
        intended_use=card.intended_use,
        license=card.license,
        performance=performance,
        limitations=card.limitations,
    )


def _save_last(
    path: Path, model: GMIC, optimiser: torch.optim.Optimizer, config: TrainingConfig, state: dict
) -> None:
    training = {**state, "optimiser": optimiser.state_dict(), "config": config.to_dict()}
    save_checkpoint(path, model, _card(config, {}), training=training)


def _save_best(path: Path, model: GMIC, config: TrainingConfig, epoch: int, row: dict[str, float]) -> None:
    performance = {
        "val_breast_malignant_auc": row["val_malignant_auc"],
        "val_breast_benign_auc": row["val_benign_auc"],
    }
    save_checkpoint(
        path,
        model,
        _card(config, performance),
        training={"epoch": epoch, "config": config.to_dict(), "metrics": row},
    )


def _append_metrics(path: Path, row: dict[str, float]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=METRIC_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def _result(output: Path, state: dict[str, Any]) -> TrainingResult:
    best = output / "best.pt"
    return TrainingResult(
        best_checkpoint=best if best.exists() else None,
        last_checkpoint=output / "last.pt",
        best_malignant_auc=state["best"],
        epochs_done=state["epoch"],
        steps_done=state["global_step"],
    )
