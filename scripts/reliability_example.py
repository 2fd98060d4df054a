"""Writes docs/reliability-example.png: the reliability diagram of a synthetic cohort's raw breast
scores (an overconfident model) and of the same scores after a site calibration fitted on another
cohort of the same site. Run from the repository root: ``python scripts/reliability_example.py``."""

from pathlib import Path

import numpy as np

from gmic_core import metrics
from gmic_core.calibration import fit_calibration
from gmic_core.training.evaluate import plot_reliability


def cohort(seed: int, breasts: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """True risk logistic in a normal variable; the model's score overstates it (slope 0.5, shift +1)."""
    rng = np.random.default_rng(seed)
    risk_logit = rng.normal(-2.0, 1.5, breasts)
    scores = 1 / (1 + np.exp(-(0.5 * risk_logit + 1.0)))
    return rng.random(breasts) < 1 / (1 + np.exp(-risk_logit)), scores


def entry(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    diagram = metrics.reliability(labels, probabilities)
    return {
        "n": labels.size,
        "ece": metrics.expected_calibration_error(labels, probabilities),
        "brier": metrics.brier_score(labels, probabilities),
        "bins": {
            "counts": diagram.counts.tolist(),
            "predicted": diagram.predicted.tolist(),
            "observed": diagram.observed.tolist(),
        },
    }


site_labels, site_scores = cohort(0)
calibrator = fit_calibration(site_labels, site_scores).calibrator
labels, scores = cohort(1)  # held-out breasts of the same site
plot_reliability(
    {"raw": entry(labels, scores), f"{calibrator.method}-calibrated": entry(labels, calibrator(scores))},
    "3000 held-out synthetic breasts",
    Path(__file__).resolve().parents[1] / "docs" / "reliability-example.png",
)
