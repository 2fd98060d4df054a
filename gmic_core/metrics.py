"""Classification and localisation metrics of the paper: ROC and PR curves and their areas,
bootstrap confidence intervals, operating points, Dice between saliency maps and lesion masks, and
the human-machine hybrid score; and the calibration of probabilities: reliability diagram data,
expected calibration error, Brier score and log loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from gmic_core.errors import AnalysisError

Metric = Callable[[np.ndarray, np.ndarray], float]


def _validated(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise AnalysisError(f"{labels.size} labels but {scores.size} scores")
    if labels.all() or not labels.any():
        raise AnalysisError("both classes are needed: the labels are all positive or all negative")
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


def threshold_for_flag_fraction(labels: np.ndarray, scores: np.ndarray, fraction: float) -> OperatingPoint:
    """The lowest threshold that calls at most ``fraction`` of all cases positive (so it flags as many as
    it can without passing the fraction; tied scores are called together, so a tie at the cut-off can
    leave the fraction flagged below ``fraction``). When even the highest score is shared by more than
    ``fraction`` of the cases, the threshold lies just above it and nothing is called positive."""
    labels, scores = _validated(labels, scores)
    distinct = np.unique(scores)[::-1]
    flagged = (scores.size - np.searchsorted(np.sort(scores), distinct, side="left")) / scores.size
    allowed = np.flatnonzero(flagged <= fraction + 1e-12)
    threshold = float(distinct[allowed[-1]]) if allowed.size else float(np.nextafter(distinct[0], np.inf))
    return operating_point(labels, scores, threshold)


def hybrid(reader: np.ndarray, model: np.ndarray, weight: float) -> np.ndarray:
    """The human-machine hybrid ``weight * reader + (1 - weight) * model`` (paper section 4.3), with
    both in [0, 1]."""
    if not 0.0 <= weight <= 1.0:
        raise AnalysisError(f"the hybrid weight must be in [0, 1], got {weight}")
    return weight * np.asarray(reader, dtype=np.float64) + (1 - weight) * np.asarray(model, dtype=np.float64)


def fleiss_kappa(ratings: np.ndarray) -> float:
    """Fleiss' kappa of ``ratings[raters, subjects]`` (categories of any kind, every rater rating every
    subject): ``(P - Pe) / (1 - Pe)`` with ``P`` the mean over subjects of the share of agreeing rater
    pairs and ``Pe`` the sum of the squared overall category shares (Fleiss, Psychol Bull 1971). NaN
    when every rating is the same category (``Pe = 1``)."""
    ratings = np.asarray(ratings)
    raters = ratings.shape[0]
    if ratings.ndim != 2 or raters < 2:
        raise AnalysisError(f"Fleiss' kappa needs ratings[raters >= 2, subjects], got {ratings.shape}")
    categories = np.unique(ratings)
    counts = (ratings[:, :, None] == categories[None, None, :]).sum(axis=0)  # [subjects, categories]
    agreement = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    chance = float(((counts.sum(axis=0) / counts.sum()) ** 2).sum())
    return float((agreement - chance) / (1 - chance)) if chance < 1 else float("nan")


def dice(prediction: np.ndarray, mask: np.ndarray, threshold: float | None = None) -> float:
    """Dice similarity between a map in [0, 1] and a binary mask: soft (``2 sum(p m) / (sum p + sum m)``)
    or, with ``threshold``, of the binarised map ``p >= threshold``. Two empty inputs give 1."""
    prediction = np.asarray(prediction, dtype=np.float64)
    mask = np.asarray(mask).astype(bool)
    if prediction.shape != mask.shape:
        raise AnalysisError(f"map {prediction.shape} and mask {mask.shape} differ in shape")
    if threshold is not None:
        prediction = (prediction >= threshold).astype(np.float64)
    denominator = prediction.sum() + mask.sum()
    return 1.0 if denominator == 0 else float(2 * prediction[mask].sum() / denominator)


CALIBRATION_BINS = 10
LOG_LOSS_EPSILON = 1e-6  # probabilities are clipped to [eps, 1 - eps] so that one confident miss stays finite


def _probabilities(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(bool).ravel()
    probabilities = np.asarray(probabilities, dtype=np.float64).ravel()
    if labels.shape != probabilities.shape:
        raise AnalysisError(f"{labels.size} labels but {probabilities.size} probabilities")
    if labels.size == 0:
        raise AnalysisError("no cases")
    if not ((probabilities >= 0) & (probabilities <= 1)).all():
        raise AnalysisError("probabilities must lie in [0, 1]")
    return labels, probabilities


@dataclass(frozen=True)
class Reliability:
    """A reliability diagram's data: ``bins`` equal-width bins of [0, 1] (``edges`` has ``bins + 1``
    values; bin ``i`` holds probabilities in ``[edges[i], edges[i + 1])``, the last one also 1.0), and per
    bin the number of cases, their mean predicted probability and the fraction positive (NaN where a bin
    is empty)."""

    edges: np.ndarray
    counts: np.ndarray
    predicted: np.ndarray
    observed: np.ndarray


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS) -> Reliability:
    labels, probabilities = _probabilities(labels, probabilities)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.minimum((probabilities * bins).astype(int), bins - 1)
    counts = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(index, probabilities, minlength=bins) / counts
        observed = np.bincount(index, labels.astype(np.float64), minlength=bins) / counts
    return Reliability(edges, counts, predicted, observed)


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, bins: int = CALIBRATION_BINS
) -> float:
    """The mean over the bins of :func:`reliability` of ``|fraction positive - mean probability|``,
    weighted by the bins' share of the cases (empty bins weigh nothing)."""
    diagram = reliability(labels, probabilities, bins)
    filled = diagram.counts > 0
    gaps = np.abs(diagram.observed[filled] - diagram.predicted[filled])
    return float(np.sum(gaps * diagram.counts[filled]) / diagram.counts.sum())


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The mean squared difference between the probability and the outcome (0 or 1)."""
    labels, probabilities = _probabilities(labels, probabilities)
    return float(np.mean((probabilities - labels) ** 2))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The mean negative log-likelihood of the outcomes, natural logarithm, probabilities clipped to
    ``[LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON]``."""
    labels, probabilities = _probabilities(labels, probabilities)
    clipped = np.clip(probabilities, LOG_LOSS_EPSILON, 1 - LOG_LOSS_EPSILON)
    return float(-np.mean(np.where(labels, np.log(clipped), np.log1p(-clipped))))
