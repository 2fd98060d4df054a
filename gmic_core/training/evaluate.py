"""Evaluation of one checkpoint or an ensemble on a manifest: ROC and PR AUCs at breast and image
level with bootstrap confidence intervals, and the Dice similarity between saliency maps and lesion
masks (paper section 3.5), both also per kind of finding where the manifest names them, and the
calibration of the breast-level probabilities per class (expected calibration error, Brier score,
reliability diagram), written as ``evaluation.json`` (and summarised in ``evaluation.md``) plus ROC, PR
and reliability curves as PNG; optionally the same AUCs for trivial image statistics (``baselines``) on
the same images."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gmic_core import metrics
from gmic_core.errors import DatasetError
from gmic_core.inference import Predictor, ViewImage
from gmic_core.training.baselines import BASELINES, image_statistics
from gmic_core.training.data import read_manifest, read_mask, read_pixels

CLASSES = ("benign", "malignant")
DICE_THRESHOLD = 0.5


def evaluate(
    predictor: Predictor,
    manifest: Path,
    out_dir: Path,
    split: str | None = None,
    resamples: int = 1000,
    log: Callable[[str], None] = print,
    baselines: bool = False,
) -> dict:
    """Run ``predictor`` on the manifest's exams (of ``split``, or all) and write the report."""
    exams = [exam for exam in read_manifest(manifest) if split is None or exam.split == split]
    if not exams:
        raise DatasetError(f"{manifest}: no exam{f' in split {split!r}' if split else ''}")
    image_rows, breast_rows, breast_lesions = [], [], []
    dice_scores: dict[str, dict[str, list[float]]] = {name: {"soft": [], "at_0_5": []} for name in CLASSES}
    dice_lesions: dict[str, list[tuple[str, ...]]] = {name: [] for name in CLASSES}
    baseline_rows: dict[str, list] = {name: [] for name in BASELINES} if baselines else {}
    for number, exam in enumerate(exams, start=1):
        pixels = {view: read_pixels(image) for view, image in exam.images.items()}
        result = predictor.predict(
            exam.exam_id, {view: ViewImage(stored) for view, stored in pixels.items()}, keep_patches=False
        )
        if baselines:
            statistics = {view: image_statistics(stored) for view, stored in pixels.items()}
            for side in result.breasts:
                views = [view for view in statistics if view.laterality is side]
                for name in BASELINES:
                    score = float(np.mean([statistics[view][name] for view in views]))
                    baseline_rows[name].append((exam.breast_labels(side), (score, score)))
        for view, image in exam.images.items():
            view_result = result.views[view]
            image_rows.append((image.labels, (view_result.benign, view_result.malignant)))
            masks = {"benign": image.mask_benign, "malignant": image.mask_malignant}
            for column, name in enumerate(CLASSES):
                if masks[name] is None:
                    continue
                saliency = view_result.saliency_in_stored()[column]  # nearest neighbour, paper section 3.5
                mask = read_mask(masks[name])
                dice_scores[name]["soft"].append(metrics.dice(saliency, mask))
                dice_scores[name]["at_0_5"].append(metrics.dice(saliency, mask, threshold=DICE_THRESHOLD))
                dice_lesions[name].append(image.lesions)
        for side, breast in result.breasts.items():
            breast_rows.append((exam.breast_labels(side), (breast.benign, breast.malignant)))
            breast_lesions.append(exam.breast_lesions(side))
        if number % 10 == 0 or number == len(exams):
            log(f"{number}/{len(exams)} exams evaluated")
    report = {
        "manifest": str(manifest),
        "split": split,
        "exams": len(exams),
        "model": asdict(predictor.identity),
        "breast": _classification(breast_rows, resamples),
        "image": _classification(image_rows, resamples),
        "calibration": calibration(breast_rows),
        "dsc": {
            name: {
                "soft": _mean(values["soft"]),
                "at_0_5": _mean(values["at_0_5"]),
                "images": len(values["soft"]),
            }
            for name, values in dice_scores.items()
        },
    }
    report["by_lesion"] = by_lesion(breast_rows, breast_lesions, dice_scores, dice_lesions, resamples)
    if baselines:
        report["baselines"] = {name: _classification(rows, resamples) for name, rows in baseline_rows.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "evaluation.json").write_text(json.dumps(report, indent=1))
    (out_dir / "evaluation.md").write_text(summary(report))
    for level, rows in (("breast", breast_rows), ("image", image_rows)):
        plot_curves(rows, f"{level} level", out_dir / f"roc_{level}.png", out_dir / f"pr_{level}.png")
    plot_reliability(report["calibration"], "breast level", out_dir / "reliability_breast.png")
    return report


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def findings(
    labels: np.ndarray, breast_lesions: Sequence[tuple[str, ...]]
) -> Iterator[tuple[int, str, np.ndarray, np.ndarray]]:
    """Per class, per kind of finding (the manifest's ``lesions`` column) that only ever occurs in
    breasts positive for that class (and not only in breasts positive for both): the class's column,
    the kind, the breasts holding it and those breasts with the breasts negative for the class."""
    kinds = sorted({kind for lesions in breast_lesions for kind in lesions})
    holding = {kind: np.array([kind in lesions for lesions in breast_lesions]) for kind in kinds}
    for column in range(len(CLASSES)):
        negative = labels[:, column] == 0
        if not negative.any():
            continue
        for kind in kinds:
            if negative[holding[kind]].any() or labels[holding[kind]].all():
                continue
            yield column, kind, holding[kind], holding[kind] | negative


def by_lesion(
    breast_rows: list[tuple[tuple[int, int], tuple[float, float]]],
    breast_lesions: list[tuple[str, ...]],
    dice_scores: dict[str, dict[str, list[float]]],
    dice_lesions: dict[str, list[tuple[str, ...]]],
    resamples: int,
) -> dict[str, dict[str, dict]]:
    """Per class and kind of finding (see :func:`findings`): the breast-level AUC of the breasts
    holding it against the breasts negative for the class, and the mean Dice on the images of those
    breasts."""
    labels = np.array([row[0] for row in breast_rows]).reshape(-1, 2)
    scores = np.array([row[1] for row in breast_rows]).reshape(-1, 2)
    report: dict[str, dict[str, dict]] = {name: {} for name in CLASSES}
    for column, kind, holding, chosen in findings(labels, breast_lesions):
        name = CLASSES[column]
        y, s = labels[chosen, column], scores[chosen, column]
        dice = [
            (soft, at_half)
            for soft, at_half, lesions in zip(
                dice_scores[name]["soft"], dice_scores[name]["at_0_5"], dice_lesions[name], strict=True
            )
            if kind in lesions
        ]
        report[name][kind] = {
            "breasts": int(holding.sum()),
            "auc": metrics.roc_auc(y, s),
            "auc_ci": list(metrics.bootstrap_ci(metrics.roc_auc, y, s, resamples)),
            "dsc_images": len(dice),
            "dsc_soft": _mean([value for value, _ in dice]),
            "dsc_at_0_5": _mean([value for _, value in dice]),
        }
    return report


def _classification(rows: list[tuple[tuple[int, int], tuple[float, float]]], resamples: int) -> dict:
    labels = np.array([row[0] for row in rows])
    scores = np.array([row[1] for row in rows])
    report = {}
    for column, name in enumerate(CLASSES):
        positives = int(labels[:, column].sum())
        entry: dict[str, object] = {"n": len(rows), "positives": positives}
        if 0 < positives < len(rows):
            y, s = labels[:, column], scores[:, column]
            entry |= {
                "auc": metrics.roc_auc(y, s),
                "auc_ci": list(metrics.bootstrap_ci(metrics.roc_auc, y, s, resamples)),
                "pr_auc": metrics.pr_auc(y, s),
                "pr_auc_ci": list(metrics.bootstrap_ci(metrics.pr_auc, y, s, resamples)),
            }
        report[name] = entry
    return report


def calibration(rows: list[tuple[tuple[int, int], tuple[float, float]]]) -> dict:
    """Per class: the expected calibration error (10 equal-width bins, weighted by their cases), the
    Brier score and the reliability diagram's bins (cases, mean probability, fraction positive; None
    where a bin is empty)."""
    labels = np.array([row[0] for row in rows])
    scores = np.array([row[1] for row in rows])
    report = {}
    for column, name in enumerate(CLASSES):
        y, p = labels[:, column], scores[:, column]
        diagram = metrics.reliability(y, p)
        report[name] = {
            "n": len(rows),
            "ece": metrics.expected_calibration_error(y, p),
            "brier": metrics.brier_score(y, p),
            "bins": {
                "edges": diagram.edges.tolist(),
                "counts": diagram.counts.tolist(),
                "predicted": [None if np.isnan(v) else float(v) for v in diagram.predicted],
                "observed": [None if np.isnan(v) else float(v) for v in diagram.observed],
            },
        }
    return report


def summary(report: dict) -> str:
    """The report as a Markdown table: AUCs with their intervals, Dice, and the baselines."""

    def interval(entry: dict, key: str) -> str:
        if key not in entry:
            return "n/a"
        low, high = entry[f"{key}_ci"]
        return f"{entry[key]:.3f} ({low:.3f}-{high:.3f})"

    lines = [
        f"{report['exams']} exams of `{Path(report['manifest']).name}`"
        + (f" (split {report['split']})" if report["split"] else ""),
        "",
        "| level | class | n (positive) | ROC AUC (95 % CI) | PR AUC (95 % CI) |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows = [(level, report[level]) for level in ("breast", "image")]
    rows += [
        (f"baseline: {name.replace('_', ' ')}", entry) for name, entry in report.get("baselines", {}).items()
    ]
    for level, entries in rows:
        for name in CLASSES:
            entry = entries[name]
            lines.append(
                f"| {level} | {name} | {entry['n']} ({entry['positives']}) | {interval(entry, 'auc')} "
                f"| {interval(entry, 'pr_auc')} |"
            )
    lines += ["", "| saliency Dice | images with a mask | soft | at 0.5 |", "| --- | --- | --- | --- |"]
    for name in CLASSES:
        dsc = report["dsc"][name]
        soft, at_half = (f"{dsc[key]:.3f}" if dsc[key] is not None else "n/a" for key in ("soft", "at_0_5"))
        lines.append(f"| {name} | {dsc['images']} | {soft} | {at_half} |")
    lines += [
        "",
        "| calibration, breast level | n | ECE (10 equal-width bins) | Brier score |",
        "| --- | --- | --- | --- |",
    ]
    for name in CLASSES:
        entry = report["calibration"][name]
        lines.append(f"| {name} | {entry['n']} | {entry['ece']:.3f} | {entry['brier']:.3f} |")
    if any(report.get("by_lesion", {}).values()):
        lines += [
            "",
            "| class | finding | breasts | ROC AUC against the negative breasts (95 % CI) "
            "| images with a mask | Dice soft | Dice at 0.5 |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, entries in report["by_lesion"].items():
            for kind, entry in entries.items():
                soft, at_half = (
                    f"{entry[key]:.3f}" if entry[key] is not None else "n/a"
                    for key in ("dsc_soft", "dsc_at_0_5")
                )
                lines.append(
                    f"| {name} | {kind} | {entry['breasts']} | {interval(entry, 'auc')} "
                    f"| {entry['dsc_images']} | {soft} | {at_half} |"
                )
    return "\n".join(lines) + "\n"


def plot_curves(
    rows: list[tuple[tuple[int, int], tuple[float, float]]], title: str, roc_path: Path, pr_path: Path
) -> None:
    """ROC and precision-recall curves of both classes, with their areas in the legend."""
    labels = np.array([row[0] for row in rows])
    scores = np.array([row[1] for row in rows])
    for path, kind in ((roc_path, "roc"), (pr_path, "pr")):
        figure = Figure(figsize=(5, 5), dpi=120)
        axes = figure.subplots()
        for column, (name, colour) in enumerate(zip(CLASSES, ("tab:green", "tab:red"), strict=True)):
            y, s = labels[:, column], scores[:, column]
            if not 0 < y.sum() < len(y):
                continue
            if kind == "roc":
                fpr, tpr, _ = metrics.roc_curve(y, s)
                axes.step(
                    fpr, tpr, where="post", color=colour, label=f"{name}: AUC {metrics.roc_auc(y, s):.3f}"
                )
            else:
                precision, recall, _ = metrics.pr_curve(y, s)
                axes.step(
                    recall,
                    precision,
                    where="post",
                    color=colour,
                    label=f"{name}: AP {metrics.pr_auc(y, s):.3f}",
                )
        if kind == "roc":
            axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
            axes.set(xlabel="1 - specificity", ylabel="sensitivity")
        else:
            axes.set(xlabel="recall (sensitivity)", ylabel="precision")
        axes.set(
            xlim=(0, 1), ylim=(0, 1.02), title=f"{'ROC' if kind == 'roc' else 'Precision-recall'}, {title}"
        )
        axes.legend(loc="lower right" if kind == "roc" else "lower left")
        figure.tight_layout()
        figure.savefig(path)


def plot_reliability(curves: dict[str, dict], title: str, path: Path) -> None:
    """A reliability diagram: per curve (the legend's name to an entry of :func:`calibration`), the
    fraction positive against the mean probability of each filled bin (points sized by the bin's
    cases), the diagonal of perfect calibration, and the ECE and Brier score in the legend."""
    figure = Figure(figsize=(5, 5), dpi=100)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1, label="perfectly calibrated")
    for (name, entry), colour in zip(curves.items(), ("tab:green", "tab:red", "tab:blue"), strict=False):
        bins = entry["bins"]
        filled = [index for index, count in enumerate(bins["counts"]) if count]
        predicted = [bins["predicted"][index] for index in filled]
        observed = [bins["observed"][index] for index in filled]
        sizes = [12 + 200 * bins["counts"][index] / entry["n"] for index in filled]
        axes.plot(predicted, observed, color=colour, linewidth=1)
        axes.scatter(
            predicted,
            observed,
            s=sizes,
            color=colour,
            label=f"{name}: ECE {entry['ece']:.3f}, Brier {entry['brier']:.3f}",
        )
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="mean predicted probability (10 equal-width bins)",
        ylabel="fraction positive",
        title=f"Reliability, {title}",
    )
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
