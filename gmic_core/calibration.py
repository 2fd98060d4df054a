"""Calibration of a model's malignancy scores on a site's own labelled exams, and the site's deciles.

Two methods, fitted with scikit-learn and kept as plain numbers, so that a calibration is stored as
JSON and applied without scikit-learn objects or pickles:

* ``isotonic``: isotonic regression of the outcome on the raw score, a non-decreasing step function
  with no assumed shape, kept as its knots and applied by linear interpolation between them; a score
  outside the fitted range takes the nearest end's probability (``out_of_bounds="clip"``).
* ``platt``: a logistic regression on the logit of the raw score, ``sigmoid(slope * logit(s) +
  intercept)``; two parameters, smooth, right when the model's miscalibration is a sigmoid one.

:func:`fit_calibration` chooses between them on the site's data: the cases are split in halves
(stratified, seeded), each method is fitted on one half and scored by its log loss on the other, the
method with the lower held-out log loss wins (``auto``) and is fitted again on all the cases.

:class:`Deciles` turn a raw exam score into a 1-10 score by the deciles of the site's raw exam scores,
as commercial products report: 10 holds the site's most suspicious tenth.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from gmic_core import metrics
from gmic_core.errors import CalibrationError

Method = Literal["isotonic", "platt"]
METHODS: tuple[Method, ...] = ("isotonic", "platt")
AUTO = "auto"
SCORE_EPSILON = 1e-6  # raw scores are clipped to [eps, 1 - eps] before the logit
MINIMUM_PER_CLASS = 2  # each half of the split needs a case of each class


def _logit(scores: np.ndarray) -> np.ndarray:
    clipped = np.clip(scores, SCORE_EPSILON, 1 - SCORE_EPSILON)
    return np.log(clipped) - np.log1p(-clipped)


@dataclass(frozen=True)
class Calibrator:
    """A fitted calibration: raw score in [0, 1] to probability. ``knots`` (isotonic only) are the
    (raw score, probability) pairs, increasing in the score; ``slope`` and ``intercept`` (Platt only)."""

    method: Method
    knots: tuple[tuple[float, float], ...] = ()
    slope: float = 1.0
    intercept: float = 0.0

    def __call__(self, scores: np.ndarray | float) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float64)
        if self.method == "isotonic":
            x, y = np.array(self.knots).T
            return np.interp(scores, x, y)
        return 1 / (1 + np.exp(-(self.slope * _logit(scores) + self.intercept)))

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": self.method, "knots": [list(knot) for knot in self.knots]}
        return {"method": self.method, "slope": self.slope, "intercept": self.intercept}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Calibrator:
        try:
            if data["method"] == "isotonic":
                knots = tuple((float(x), float(y)) for x, y in data["knots"])
                if not knots:
                    raise ValueError("no knots")
                return cls("isotonic", knots=knots)
            if data["method"] == "platt":
                return cls("platt", slope=float(data["slope"]), intercept=float(data["intercept"]))
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(
                f"a stored calibration is damaged ({error!r}): run gmic calibrate again"
            ) from error
        raise CalibrationError(f"unknown calibration method {data['method']!r}: run gmic calibrate again")


def fit(method: Method, labels: np.ndarray, scores: np.ndarray) -> Calibrator:
    """Fit ``method`` to the outcomes ``labels`` of the raw ``scores``. Platt's logistic regression
    keeps scikit-learn's default L2 penalty (C = 1): it matters only on a few cases, where it keeps a
    perfectly separated set from an infinite slope."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if method == "isotonic":
        regression = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, labels)
        knots = zip(regression.X_thresholds_.tolist(), regression.y_thresholds_.tolist(), strict=True)
        return Calibrator("isotonic", knots=tuple(knots))
    model = LogisticRegression().fit(_logit(scores)[:, None], labels.astype(int))
    return Calibrator("platt", slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


@dataclass(frozen=True)
class CalibrationFit:
    """A calibrator fitted on all of a site's cases, and the evidence for its method from the split in
    halves: each method's log loss on the held-out half when fitted on the other, and the expected
    calibration error of the held-out half before (raw scores) and after calibration by the chosen
    method fitted on the other half."""

    calibrator: Calibrator
    held_out_log_loss: Mapping[str, float]
    held_out_ece_raw: float
    held_out_ece_calibrated: float
    cases: int
    positives: int

    def to_json(self) -> dict[str, Any]:
        return {
            "calibrator": self.calibrator.to_json(),
            "held_out_log_loss": dict(self.held_out_log_loss),
            "held_out_ece_raw": self.held_out_ece_raw,
            "held_out_ece_calibrated": self.held_out_ece_calibrated,
            "cases": self.cases,
            "positives": self.positives,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CalibrationFit:
        try:
            return cls(
                Calibrator.from_json(data["calibrator"]),
                {str(name): float(value) for name, value in data["held_out_log_loss"].items()},
                float(data["held_out_ece_raw"]),
                float(data["held_out_ece_calibrated"]),
                int(data["cases"]),
                int(data["positives"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise CalibrationError(
                f"a stored calibration is damaged ({error!r}): run gmic calibrate again"
            ) from error


def fit_calibration(
    labels: np.ndarray, scores: np.ndarray, method: Method | Literal["auto"] = AUTO, seed: int = 0
) -> CalibrationFit:
    """Calibrate the raw ``scores`` of cases with outcomes ``labels``: ``method`` ``"auto"`` takes the
    method with the lower held-out log loss (see the module's docstring); a named method is used as
    given, and both held-out log losses are still reported."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    positives = int(labels.sum())
    if min(positives, labels.size - positives) < MINIMUM_PER_CLASS:
        raise CalibrationError(
            f"a calibration needs at least {MINIMUM_PER_CLASS} malignant and {MINIMUM_PER_CLASS} "
            f"non-malignant cases; the calibration set has {positives} malignant of {labels.size}"
        )
    if method != AUTO and method not in METHODS:
        raise CalibrationError(f"the calibration method is one of auto, {', '.join(METHODS)}; not {method!r}")
    fitting, held_out = train_test_split(
        np.arange(labels.size), test_size=0.5, stratify=labels, random_state=seed
    )
    on_half = {name: fit(name, labels[fitting], scores[fitting]) for name in METHODS}
    losses = {
        name: metrics.log_loss(labels[held_out], calibrator(scores[held_out]))
        for name, calibrator in on_half.items()
    }
    chosen = cast(Method, min(METHODS, key=losses.__getitem__) if method == AUTO else method)
    return CalibrationFit(
        fit(chosen, labels, scores),
        losses,
        metrics.expected_calibration_error(labels[held_out], scores[held_out]),
        metrics.expected_calibration_error(labels[held_out], on_half[chosen](scores[held_out])),
        labels.size,
        positives,
    )


@dataclass(frozen=True)
class Deciles:
    """The nine inner edges of the deciles of a site's raw exam scores: the 10th, 20th, ..., 90th
    percentiles (numpy's linear interpolation between order statistics). A score's decile is 1 plus the
    number of edges at or below it, so decile ``d`` holds scores in ``[edges[d - 2], edges[d - 1])``; a
    score equal to an edge goes up. Where ties make several edges equal, the deciles between them stay
    empty and every tied exam lands in the highest of them: the 1-10 score never splits equal scores."""

    edges: tuple[float, ...]

    @classmethod
    def of(cls, scores: np.ndarray) -> Deciles:
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if scores.size == 0:
            raise CalibrationError("deciles need at least one exam score")
        return cls(tuple(float(edge) for edge in np.quantile(scores, np.arange(1, 10) / 10)))

    def __call__(self, scores: np.ndarray | float) -> np.ndarray:
        return 1 + np.searchsorted(np.array(self.edges), np.asarray(scores, dtype=np.float64), side="right")


@dataclass(frozen=True)
class SiteCalibration:
    """A site's calibration of one model: of the exam malignancy score (the highest of the breasts'),
    of the breast malignancy score, and the deciles of its raw exam scores."""

    exam: CalibrationFit
    breast: CalibrationFit
    deciles: Deciles

    def exam_probability(self, score: float) -> float:
        return float(self.exam.calibrator(score))

    def breast_probability(self, score: float) -> float:
        return float(self.breast.calibrator(score))

    def decile(self, score: float) -> int:
        return int(self.deciles(score))

    def to_json(self) -> dict[str, Any]:
        return {
            "exam": self.exam.to_json(),
            "breast": self.breast.to_json(),
            "decile_edges": list(self.deciles.edges),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SiteCalibration:
        try:
            edges = tuple(float(edge) for edge in data["decile_edges"])
            exam, breast = data["exam"], data["breast"]
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(
                f"a stored calibration is damaged ({error!r}): run gmic calibrate again"
            ) from error
        if len(edges) != 9:
            raise CalibrationError(f"a stored calibration has {len(edges)} decile edges, not 9")
        return cls(CalibrationFit.from_json(exam), CalibrationFit.from_json(breast), Deciles(edges))
