"""Calibration measures, calibrators, the choice between them and the deciles, on synthetic cohorts:
labels drawn from a known true risk, scores a miscalibrated monotone function of it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from gmic_core import metrics
from gmic_core.calibration import (
    CalibrationFit,
    Calibrator,
    Deciles,
    SiteCalibration,
    fit,
    fit_calibration,
)
from gmic_core.errors import CalibrationError

EXAMS = 3000


def sigmoid_cohort(seed: int, exams: int = EXAMS) -> tuple[np.ndarray, np.ndarray]:
    """The true risk is logistic in the logit of the score: an overconfident, shifted model, the case
    Platt scaling describes exactly."""
    rng = np.random.default_rng(seed)
    risk_logit = rng.normal(-2.0, 1.5, exams)
    scores = 1 / (1 + np.exp(-(0.5 * risk_logit + 1.0)))
    return rng.random(exams) < 1 / (1 + np.exp(-risk_logit)), scores


def step_cohort(seed: int, exams: int = EXAMS) -> tuple[np.ndarray, np.ndarray]:
    """The true risk jumps from 5 % to 70 % at a score of 0.6: no sigmoid of the logit follows that."""
    rng = np.random.default_rng(seed)
    scores = rng.random(exams)
    return rng.random(exams) < np.where(scores < 0.6, 0.05, 0.7), scores


def test_expected_calibration_error_weighs_ten_equal_bins_by_their_cases():
    # bin [0.1, 0.2): 4 cases at 0.15, one positive (gap 0.1); bin [0.9, 1.0]: 0.95 and 1.0, both positive
    # (gap 0.025): (4 * 0.1 + 2 * 0.025) / 6
    labels = np.array([1, 0, 0, 0, 1, 1])
    probabilities = np.array([0.15, 0.15, 0.15, 0.15, 0.95, 1.0])
    assert metrics.expected_calibration_error(labels, probabilities) == pytest.approx(0.45 / 6)
    diagram = metrics.reliability(labels, probabilities)
    assert diagram.counts.tolist() == [0, 4, 0, 0, 0, 0, 0, 0, 0, 2]
    assert diagram.observed[9] == 1.0
    assert diagram.predicted[9] == pytest.approx(0.975)
    assert np.isnan(diagram.predicted[0])
    assert metrics.expected_calibration_error(labels, labels.astype(float)) == 0.0


def test_brier_score_and_log_loss_match_scikit_learn():
    labels, scores = sigmoid_cohort(1, 500)
    assert metrics.brier_score(labels, scores) == pytest.approx(brier_score_loss(labels, scores))
    assert metrics.log_loss(labels, scores) == pytest.approx(sk_log_loss(labels, scores))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        metrics.brier_score(labels, scores * 2)


@pytest.mark.parametrize(("cohort", "expected"), [(sigmoid_cohort, "platt"), (step_cohort, "isotonic")])
def test_calibration_lowers_the_error_on_held_out_exams_and_picks_the_right_method(cohort, expected):
    labels, scores = cohort(0)
    result = fit_calibration(labels, scores)
    assert result.calibrator.method == expected
    assert result.held_out_log_loss[expected] == min(result.held_out_log_loss.values())
    assert result.held_out_ece_calibrated < result.held_out_ece_raw / 3
    held_labels, held_scores = cohort(100)  # exams the calibration never saw
    raw = metrics.expected_calibration_error(held_labels, held_scores)
    calibrated = metrics.expected_calibration_error(held_labels, result.calibrator(held_scores))
    assert raw > 0.15
    assert calibrated < 0.03
    assert metrics.brier_score(held_labels, result.calibrator(held_scores)) < metrics.brier_score(
        held_labels, held_scores
    )


def test_a_named_method_is_used_and_both_held_out_losses_reported():
    labels, scores = sigmoid_cohort(2)
    result = fit_calibration(labels, scores, method="isotonic")
    assert result.calibrator.method == "isotonic"
    assert set(result.held_out_log_loss) == {"isotonic", "platt"}
    assert (result.cases, result.positives) == (EXAMS, int(labels.sum()))
    with pytest.raises(CalibrationError, match="at least 2 malignant"):
        fit_calibration(np.array([1, 0, 0, 0, 0]), np.linspace(0, 1, 5))


def test_stored_calibrators_apply_without_scikit_learn_as_fitted():
    labels, scores = step_cohort(3, 800)
    isotonic = fit("isotonic", labels, scores)
    reference = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
    probe = np.concatenate((np.linspace(-0.5, 1.5, 201), scores))
    np.testing.assert_allclose(isotonic(probe), reference.predict(probe), atol=1e-12)
    platt = fit("platt", *sigmoid_cohort(3, 800))
    assert platt.slope > 0
    for calibrator in (isotonic, platt):
        again = Calibrator.from_json(json.loads(json.dumps(calibrator.to_json())))
        assert again == calibrator
        np.testing.assert_array_equal(again(probe.clip(0, 1)), calibrator(probe.clip(0, 1)))
        assert np.all(np.diff(calibrator(np.linspace(0, 1, 101))) >= 0)  # monotone: thresholds keep meaning


def test_a_site_calibration_round_trips_through_json_and_refuses_damage():
    labels, scores = sigmoid_cohort(4, 1000)
    site = SiteCalibration(
        fit_calibration(labels, scores), fit_calibration(labels, scores), Deciles.of(scores)
    )
    again = SiteCalibration.from_json(json.loads(json.dumps(site.to_json())))
    assert again == site
    assert again.exam_probability(0.3) == site.exam.calibrator(0.3)
    assert again.decile(float(scores.max())) == 10
    with pytest.raises(CalibrationError, match="run gmic calibrate again"):
        CalibrationFit.from_json({"calibrator": {"method": "isotonic", "knots": []}})
    with pytest.raises(CalibrationError, match="unknown calibration method"):
        Calibrator.from_json({"method": "beta"})
    with pytest.raises(CalibrationError, match="decile edges"):
        SiteCalibration.from_json({**site.to_json(), "decile_edges": [0.5]})


def test_each_decile_holds_a_tenth_of_held_out_exams():
    _, scores = sigmoid_cohort(5)
    deciles = Deciles.of(scores)
    assert len(deciles.edges) == 9
    _, held_out = sigmoid_cohort(105)
    shares = np.bincount(deciles(held_out), minlength=11)[1:] / held_out.size
    assert shares == pytest.approx(np.full(10, 0.1), abs=0.03)
    assert deciles(0.0) == 1
    assert deciles(1.0) == 10


def test_deciles_never_split_tied_scores():
    scores = np.array([0.0] * 50 + list(np.linspace(0.1, 1.0, 50)))  # half the exams tie at 0
    deciles = Deciles.of(scores)
    assert deciles.edges[:4] == (0.0,) * 4
    assert set(deciles(scores[:50]).tolist()) == {5}  # a score on an edge goes up, past the tied edges
    assert deciles(deciles.edges[6]) == 8
    assert Deciles((0.5,) * 9)(np.array([0.4, 0.5, 0.6])).tolist() == [1, 10, 10]


def test_the_flag_fraction_threshold_flags_as_many_as_it_may():
    labels, scores = sigmoid_cohort(6, 1000)
    scores = np.round(scores, 2)  # many ties
    for fraction in (0.05, 0.1, 0.25):
        point = metrics.threshold_for_flag_fraction(labels, scores, fraction)
        flagged = (scores >= point.threshold).mean()
        assert flagged <= fraction
        assert (
            scores >= scores[scores < point.threshold].max()
        ).mean() > fraction  # one step lower: too many
        assert metrics.operating_point(labels, scores, point.threshold) == point
    tied_top = np.array([0.9, 0.9, 0.9, 0.1, 0.2, 0.3])
    nothing = metrics.threshold_for_flag_fraction(np.array([1, 0, 1, 0, 0, 1]), tied_top, 0.2)
    assert nothing.threshold > 0.9
    assert nothing.sensitivity == 0.0
