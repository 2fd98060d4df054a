"""Our metrics against scikit-learn on fixed arrays, and the definitions of the rest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from gmic_core import metrics


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(labels * 0.8, 1.0), 1)  # rounded: many ties
    return labels, scores


def test_roc_auc_matches_sklearn(data):
    assert metrics.roc_auc(*data) == pytest.approx(roc_auc_score(*data), abs=1e-12)


def test_pr_auc_matches_sklearn_average_precision(data):
    assert metrics.pr_auc(*data) == pytest.approx(average_precision_score(*data), abs=1e-12)


def test_roc_curve_matches_sklearn(data):
    fpr, tpr, _ = metrics.roc_curve(*data)
    sk_fpr, sk_tpr, _ = sk_roc_curve(*data, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert np.trapezoid(tpr, fpr) == pytest.approx(metrics.roc_auc(*data))


def test_single_class_is_refused():
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc(np.ones(5), np.arange(5))


def test_bootstrap_interval_brackets_the_estimate(data):
    low, high = metrics.bootstrap_ci(metrics.roc_auc, *data, resamples=300)
    assert low < metrics.roc_auc(*data) < high
    assert metrics.bootstrap_ci(metrics.roc_auc, *data, resamples=300) == (low, high)  # seeded


def test_operating_points_reach_their_targets(data):
    labels, scores = data
    for target in (0.5, 0.8, 0.95):
        point = metrics.threshold_for_sensitivity(labels, scores, target)
        assert point.sensitivity >= target
        stricter = metrics.operating_point(labels, scores, np.nextafter(point.threshold, np.inf))
        assert stricter.sensitivity < target  # the highest threshold that reaches it
        point = metrics.threshold_for_specificity(labels, scores, target)
        assert point.specificity >= target


def test_dice():
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    prediction = np.zeros((4, 4))
    prediction[:2, :] = 0.6
    assert metrics.dice(prediction, mask) == pytest.approx(2 * 0.6 * 4 / (0.6 * 8 + 4))
    assert metrics.dice(prediction, mask, threshold=0.5) == pytest.approx(2 * 4 / (8 + 4))
    assert metrics.dice(np.zeros((2, 2)), np.zeros((2, 2), bool)) == 1.0


def test_hybrid_is_the_weighted_mean():
    np.testing.assert_allclose(metrics.hybrid([1.0, 0.0], [0.0, 0.5], 0.25), [0.25, 0.375])
    with pytest.raises(ValueError, match="hybrid weight"):
        metrics.hybrid([1.0], [0.0], 1.5)


def test_fleiss_kappa_of_a_hand_computed_example():
    """Three raters, four subjects: agreement per subject 1, 1/3, 1, 1/3 (mean 2/3), the two
    categories half of all ratings each (chance 1/2): kappa = (2/3 - 1/2) / (1 - 1/2) = 1/3."""
    ratings = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 1]])
    assert metrics.fleiss_kappa(ratings) == pytest.approx(1 / 3)
    assert metrics.fleiss_kappa(ratings[:, [0, 2]]) == pytest.approx(1.0)
    assert np.isnan(metrics.fleiss_kappa(np.ones((2, 3))))
