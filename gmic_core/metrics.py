"""Classification and localisation metrics of the paper: ROC and PR curves and their areas,
bootstrap confidence intervals, operating points, Dice between saliency maps and lesion masks, and
the human-machine hybrid score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

Metric = Callable[[np.ndarray, np.ndarray], float]


def _validated(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if labels.all() or not labels.any():
        raise ValueError("both classes are needed: the labels are all positive or all negative")
    return labels, scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the empirical ROC curve: the Mann-Whitney statistic, ties counting one half."""
    labels, scores = _validated(labels, scores)
    ranks = rankdata(scores)
    positives = int(labels.sum())
    negatives = labels.size - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates, thresholds), from (0, 0) to (1, 1); a case is called
    positive when its score is at least the threshold."""
    labels, scores = _validated(labels, scores)
    thresholds, true_positives, false_positives = _cumulative_counts(labels, scores)
    return (
        np.concatenate(([0.0], false_positives / (~labels).sum())),
        np.concatenate(([0.0], true_positives / labels.sum())),
        np.concatenate(([np.inf], thresholds)),
    )


def pr_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct threshold, from the highest score down."""
    labels, scores = _validated(labels, scores)
    thresholds, true_positives, false_positives = _cumulative_counts(labels, scores)
    precision = true_positives / (true_positives + false_positives)
    return precision, true_positives / labels.sum(), thresholds


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over thresholds of the recall
    gained times the precision there (no interpolation)."""
    precision, recall, _ = pr_curve(labels, scores)
    return float(np.sum(np.diff(np.concatenate(([0.0], recall))) * precision))


def _cumulative_counts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_each = np.flatnonzero(np.diff(sorted_scores, append=-np.inf))
    true_positives = np.cumsum(sorted_labels)[last_of_each].astype(np.float64)
    false_positives = (last_of_each + 1) - true_positives
    return sorted_scores[last_of_each], true_positives, false_positives


def bootstrap_ci(
    metric: Metric,
    labels: np.ndarray,
    scores: np.ndarray,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric``, resampling positives and negatives separately
    (stratified) so that every resample has both classes."""
    labels, scores = _validated(labels, scores)
    rng = np.random.default_rng(seed)
    positive, negative = np.flatnonzero(labels), np.flatnonzero(~labels)
    values = np.empty(resamples)
    for index in range(resamples):
        chosen = np.concatenate((rng.choice(positive, positive.size), rng.choice(negative, negative.size)))
        values[index] = metric(labels[chosen], scores[chosen])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class OperatingPoint:
    threshold: float
    sensitivity: float
    specificity: float


def operating_point(labels: np.ndarray, scores: np.ndarray, threshold: float) -> OperatingPoint:
    """Sensitivity and specificity when cases scoring at least ``threshold`` are called positive."""
    labels, scores = _validated(labels, scores)
    called = scores >= threshold
    return OperatingPoint(threshold, float(called[labels].mean()), float((~called[~labels]).mean()))


def threshold_for_sensitivity(labels: np.ndarray, scores: np.ndarray, target: float) -> OperatingPoint:
    """The highest threshold whose sensitivity reaches ``target`` (so the best specificity there)."""
    _, tpr, thresholds = roc_curve(labels, scores)
    index = int(np.argmax(tpr >= target - 1e-12))
    return operating_point(labels, scores, float(thresholds[index]))


def threshold_for_specificity(labels: np.ndarray, scores: np.ndarray, target: float) -> OperatingPoint:
    """The lowest threshold whose specificity reaches ``target`` (so the best sensitivity there)."""
    fpr, _, thresholds = roc_curve(labels, scores)
    allowed = np.flatnonzero(1 - fpr >= target - 1e-12)
    return operating_point(labels, scores, float(thresholds[allowed[-1]]))


def hybrid(reader: np.ndarray, model: np.ndarray, weight: float) -> np.ndarray:
    """The human-machine hybrid ``weight * reader + (1 - weight) * model`` (paper section 4.3), with
    both in [0, 1]."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the hybrid weight must be in [0, 1], got {weight}")
    return weight * np.asarray(reader, dtype=np.float64) + (1 - weight) * np.asarray(model, dtype=np.float64)


def dice(prediction: np.ndarray, mask: np.ndarray, threshold: float | None = None) -> float:
    """Dice similarity between a map in [0, 1] and a binary mask: soft (``2 sum(p m) / (sum p + sum m)``)
    or, with ``threshold``, of the binarised map ``p >= threshold``. Two empty inputs give 1."""
    prediction = np.asarray(prediction, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if prediction.shape != mask.shape:
        raise ValueError(f"map {prediction.shape} and mask {mask.shape} differ in shape")
    if threshold is not None:
        prediction = (prediction >= threshold).astype(np.float64)
    denominator = prediction.sum() + mask.sum()
    return 1.0 if denominator == 0 else float(2 * prediction[mask].sum() / denominator)
