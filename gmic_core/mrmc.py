"""Multi-reader multi-case (MRMC) comparison of ROC AUCs between modalities.

The Obuchowski-Rockette (OR) model with Hillis's denominator degrees of freedom, random readers
and random cases, for a fully crossed design (every reader reads every case in every modality):

* reader-by-modality empirical AUCs ``theta[i, j]`` (modality i, reader j);
* their error covariance over cases, estimated by the jackknife (leave one case out) or by the
  DeLong method (structural components);
* ``Var``, ``Cov1`` (same reader, different modalities), ``Cov2`` (different readers, same
  modality) and ``Cov3`` (different readers and modalities) as averages of that covariance matrix;
* ``F = MS(T) / (MS(TR) + r * max(Cov2 - Cov3, 0))`` on ``t - 1`` and Hillis's
  ``ddf = (MS(TR) + r * max(Cov2 - Cov3, 0))^2 / (MS(TR)^2 / ((t - 1)(r - 1)))`` degrees of freedom,
  and the confidence interval of each difference of reader-averaged AUCs
  ``d +- t_{alpha/2, ddf} * sqrt(2 / r * (MS(TR) + r * max(Cov2 - Cov3, 0)))``
  (Obuchowski & Rockette, Commun Stat Simul Comput 1995; Hillis, Stat Med 2007);
* per modality, the single-modality interval from ``MS(R)`` and that modality's ``Cov2``.

Cases may come in clusters (``clusters``: one label per case, the woman whose breasts they are): the
jackknife then leaves out one cluster at a time, and the DeLong covariance becomes Obuchowski's
clustered estimator (Biometrics 1997), so that correlated breasts of one woman add no false precision.
Without clusters every case is its own unit: the published analyses, unchanged.

:func:`dorfman_berbaum_metz` is the DBM analysis of jackknife pseudovalues with Hillis's ddf, a
cross-check: for the empirical AUC it gives the same F as OR with jackknife covariances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import special, stats

from gmic_core.errors import AnalysisError

CovarianceMethod = Literal["jackknife", "delong"]


@dataclass(frozen=True)
class Difference:
    """Reader-averaged AUC of ``first`` minus that of ``second`` (modality indices)."""

    first: int
    second: int
    estimate: float
    std_err: float
    ddf: float
    ci: tuple[float, float]
    t: float
    p: float


@dataclass(frozen=True)
class ModalityInterval:
    """A modality's reader-averaged AUC with the interval from its own data only: ``ci`` the published
    (Wald) one, which can leave [0, 1] on few readers or cases, and ``logit_ci`` its range-respecting
    counterpart (:data:`MODALITY_INTERVAL_METHOD`)."""

    estimate: float
    std_err: float
    df: float
    ci: tuple[float, float]
    logit_ci: tuple[float, float]


@dataclass(frozen=True)
class ORResult:
    aucs: np.ndarray  # [t, r]
    covariance: CovarianceMethod
    var: float
    cov1: float
    cov2: float
    cov3: float
    ms_t: float
    ms_tr: float
    f: float
    df1: int
    ddf: float
    p: float
    differences: tuple[Difference, ...]  # every pair (i < k)
    modalities: tuple[ModalityInterval, ...]

    @property
    def means(self) -> np.ndarray:
        return self.aucs.mean(axis=1)


@dataclass(frozen=True)
class DBMResult:
    f: float
    df1: int
    ddf: float
    p: float
    differences: tuple[Difference, ...]


def _validated(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ratings = np.asarray(ratings, dtype=np.float64)
    truth = np.asarray(truth).astype(bool).ravel()
    if ratings.ndim != 3 or ratings.shape[2] != truth.size:
        raise AnalysisError(f"ratings must be [modalities, readers, cases={truth.size}], got {ratings.shape}")
    if not np.isfinite(ratings).all():
        raise AnalysisError(
            "every reader must rate every case in every modality (missing or non-finite ratings)"
        )
    if truth.all() or not truth.any():
        raise AnalysisError("both classes are needed: the cases are all positive or all negative")
    return ratings, truth


def _clusters(clusters: np.ndarray | None, cases: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The distinct cluster labels and each case's index among them, or None (every case its own unit)."""
    if clusters is None:
        return None
    labels = np.asarray(clusters).ravel()
    if labels.size != cases:
        raise AnalysisError(
            f"clusters must give one label per case: {cases} cases but {labels.size} cluster labels"
        )
    distinct, codes = np.unique(labels, return_inverse=True)
    if distinct.size < 2:
        raise AnalysisError(
            f"every case is in one cluster ({distinct[0]}): a clustered analysis needs at least two "
            "clusters (women); treat the cases as independent instead"
        )
    return distinct, codes


def _kernel(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """The Mann-Whitney kernel psi(x_pos, y_neg) of every pair, ``[m, n]``: 1 above, 1/2 tied, 0 below."""
    difference = positives[:, None] - negatives[None, :]
    return (difference > 0) + 0.5 * (difference == 0)


def _by_cluster(values: np.ndarray, codes: np.ndarray, count: int) -> np.ndarray:
    """``values[readings, units]`` summed over the units of each of ``count`` clusters."""
    return values @ (codes[:, None] == np.arange(count))


def _kernel_sums(ratings: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per reading (flattened modality x reader): the kernel (:func:`_kernel`) summed over negatives
    for each positive ``[n, m]``, over positives for each negative ``[n, k]``, and in total ``[n]``."""
    flat = ratings.reshape(-1, ratings.shape[-1])
    positives, negatives = flat[:, truth], flat[:, ~truth]
    per_positive = np.empty_like(positives)
    per_negative = np.empty_like(negatives)
    for index in range(flat.shape[0]):
        kernel = _kernel(positives[index], negatives[index])
        per_positive[index] = kernel.sum(axis=1)
        per_negative[index] = kernel.sum(axis=0)
    return per_positive, per_negative, per_positive.sum(axis=1)


def empirical_aucs(ratings: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Empirical ROC AUC (Wilcoxon) of every modality and reader, ``[t, r]``."""
    ratings, truth = _validated(ratings, truth)
    _, _, total = _kernel_sums(ratings, truth)
    return (total / (truth.sum() * (~truth).sum())).reshape(ratings.shape[:2])


def _within_cluster_sums(ratings: np.ndarray, truth: np.ndarray, codes: np.ndarray, count: int) -> np.ndarray:
    """Per reading, the kernel summed over the positive-negative pairs inside each cluster, ``[n, count]``."""
    flat = ratings.reshape(-1, ratings.shape[-1])
    same = codes[truth][:, None] == codes[~truth][None, :]
    pair_clusters = np.broadcast_to(codes[truth][:, None], same.shape)[same]
    sums = np.empty((flat.shape[0], count))
    for index, row in enumerate(flat):
        pairs = _kernel(row[truth], row[~truth])[same]
        sums[index] = np.bincount(pair_clusters, weights=pairs, minlength=count)
    return sums


def jackknife_aucs(ratings: np.ndarray, truth: np.ndarray, clusters: np.ndarray | None = None) -> np.ndarray:
    """AUCs with each case left out in turn, ``[t, r, cases]``; with ``clusters`` each cluster (all
    its cases at once), ``[t, r, clusters]`` in the sorted order of the cluster labels."""
    ratings, truth = _validated(ratings, truth)
    grouped = _clusters(clusters, truth.size)
    per_positive, per_negative, total = _kernel_sums(ratings, truth)
    m, n = int(truth.sum()), int((~truth).sum())
    if grouped is None:
        left_out = np.empty((per_positive.shape[0], truth.size))
        left_out[:, truth] = (total[:, None] - per_positive) / ((m - 1) * n)
        left_out[:, ~truth] = (total[:, None] - per_negative) / (m * (n - 1))
        return left_out.reshape(ratings.shape)
    labels, codes = grouped
    count = labels.size
    m_i, n_i = np.bincount(codes[truth], minlength=count), np.bincount(codes[~truth], minlength=count)
    whole = (m_i == m) | (n_i == n)
    if whole.any():
        raise AnalysisError(
            f"cluster {labels[whole][0]} holds every {'positive' if m_i[whole][0] == m else 'negative'} "
            "case, so leaving it out leaves one class: the jackknife needs that class in two or more "
            "clusters; treat the cases as independent instead"
        )
    # Leaving a cluster out removes its positives' and its negatives' pairs; those inside it twice.
    removed = (
        _by_cluster(per_positive, codes[truth], count)
        + _by_cluster(per_negative, codes[~truth], count)
        - _within_cluster_sums(ratings, truth, codes, count)
    )
    left_out = (total[:, None] - removed) / ((m - m_i) * (n - n_i))
    return left_out.reshape(*ratings.shape[:2], count)


def auc_covariance(
    ratings: np.ndarray, truth: np.ndarray, method: CovarianceMethod, clusters: np.ndarray | None = None
) -> np.ndarray:
    """Covariance over cases (over clusters, with ``clusters``) of the flattened ``[t * r]`` AUCs
    (index ``i * r + j``). With clusters, ``delong`` is Obuchowski's clustered estimator: for
    cluster k with m_k positive and n_k negative cases, V10_k sums its positives' placement values
    and V01_k its negatives'; with I clusters, M positives and N negatives,
    ``S10 = I / ((I - 1) M) sum_k (V10_k - m_k A)(V10_k - m_k A)'``, S01 likewise over N,
    ``S11 = I / (I - 1) sum_k (V10_k - m_k A)(V01_k - n_k A)'`` and the covariance is
    ``S10 / M + S01 / N + (S11 + S11') / (M N)``. On singleton clusters it differs slightly from
    DeLong's, which ``clusters=None`` keeps."""
    ratings, truth = _validated(ratings, truth)
    if method == "jackknife":
        left_out = jackknife_aucs(ratings, truth, clusters).reshape(ratings.shape[0] * ratings.shape[1], -1)
        units = left_out.shape[1]
        centred = left_out - left_out.mean(axis=1, keepdims=True)
        return (units - 1) / units * centred @ centred.T
    if method == "delong":
        grouped = _clusters(clusters, truth.size)
        per_positive, per_negative, total = _kernel_sums(ratings, truth)
        m, n = int(truth.sum()), int((~truth).sum())
        v10, v01 = per_positive / n, per_negative / m
        if grouped is None:
            return np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
        count, codes = grouped[0].size, grouped[1]
        aucs = total[:, None] / (m * n)
        d10 = _by_cluster(v10, codes[truth], count) - np.bincount(codes[truth], minlength=count) * aucs
        d01 = _by_cluster(v01, codes[~truth], count) - np.bincount(codes[~truth], minlength=count) * aucs
        scale = count / (count - 1)
        s10, s01, s11 = scale / m * d10 @ d10.T, scale / n * d01 @ d01.T, scale * d10 @ d01.T
        return s10 / m + s01 / n + (s11 + s11.T) / (m * n)
    raise ValueError(f"unknown covariance method {method!r}: jackknife or delong")


def _covariance_averages(covariance: np.ndarray, t: int, r: int) -> tuple[float, float, float, float]:
    """Var, Cov1, Cov2, Cov3 of the OR model from the ``[t * r, t * r]`` covariance matrix."""
    modality = np.repeat(np.arange(t), r)
    reader = np.tile(np.arange(r), t)
    same_modality = modality[:, None] == modality[None, :]
    same_reader = reader[:, None] == reader[None, :]

    def mean(mask: np.ndarray) -> float:
        return float(covariance[mask].mean()) if mask.any() else 0.0

    return (
        mean(same_modality & same_reader),
        mean(~same_modality & same_reader),
        mean(same_modality & ~same_reader),
        mean(~same_modality & ~same_reader),
    )


def _differences(
    means: np.ndarray, variance_term: float, r: int, ddf: float, alpha: float
) -> tuple[Difference, ...]:
    """Pairwise differences with ``std_err = sqrt(2 / r * variance_term)`` on ``ddf``. Without
    variance (every reader agrees on every case) a difference's t is infinite, and NaN for none."""
    std_err = float(np.sqrt(2.0 / r * variance_term))
    quantile = float(stats.t.ppf(1 - alpha / 2, ddf))
    differences = []
    for first in range(means.size):
        for second in range(first + 1, means.size):
            estimate = float(means[first] - means[second])
            if std_err > 0:
                t_value = estimate / std_err
            else:
                t_value = np.copysign(np.inf, estimate) if estimate else np.nan
            differences.append(
                Difference(
                    first,
                    second,
                    estimate,
                    std_err,
                    ddf,
                    (estimate - quantile * std_err, estimate + quantile * std_err),
                    float(t_value),
                    float(2 * stats.t.sf(abs(t_value), ddf)),
                )
            )
    return tuple(differences)


def obuchowski_rockette(
    ratings: np.ndarray,
    truth: np.ndarray,
    covariance: CovarianceMethod = "jackknife",
    alpha: float = 0.05,
    clusters: np.ndarray | None = None,
) -> ORResult:
    """OR analysis with Hillis's ddf (random readers, random cases) of ``ratings[t, r, cases]``
    (higher = more suspicious) against ``truth[cases]``, the covariances over ``clusters`` of cases
    where given (see :func:`auc_covariance`). Needs two or more readers."""
    ratings, truth = _validated(ratings, truth)
    t, r = ratings.shape[:2]
    if r < 2:
        raise AnalysisError("an MRMC analysis needs at least two readers")
    aucs = empirical_aucs(ratings, truth)
    matrix = auc_covariance(ratings, truth, covariance, clusters)
    var, cov1, cov2, cov3 = _covariance_averages(matrix, t, r)
    modality_means, reader_means, grand = aucs.mean(axis=1), aucs.mean(axis=0), aucs.mean()
    ms_t = r * float(((modality_means - grand) ** 2).sum()) / (t - 1) if t > 1 else 0.0
    interaction = aucs - modality_means[:, None] - reader_means[None, :] + grand
    ms_tr = float((interaction**2).sum()) / ((t - 1) * (r - 1)) if t > 1 else 0.0
    denominator = ms_tr + r * max(cov2 - cov3, 0.0)
    if t > 1 and denominator > 0:
        f = ms_t / denominator
        ddf = denominator**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > 0 else np.inf
        p = float(stats.f.sf(f, t - 1, ddf))
    else:
        f, ddf, p = np.nan, np.nan, np.nan
    differences = _differences(modality_means, denominator, r, ddf, alpha) if t > 1 else ()
    modalities = tuple(
        _single_modality(aucs[i], matrix[i * r : (i + 1) * r, i * r : (i + 1) * r], alpha) for i in range(t)
    )
    return ORResult(
        aucs,
        covariance,
        var,
        cov1,
        cov2,
        cov3,
        ms_t,
        ms_tr,
        float(f),
        t - 1,
        float(ddf),
        p,
        differences,
        modalities,
    )


def _single_modality(aucs: np.ndarray, covariance: np.ndarray, alpha: float) -> ModalityInterval:
    r = aucs.size
    ms_r = float(((aucs - aucs.mean()) ** 2).sum()) / (r - 1)
    _, _, cov2, _ = _covariance_averages(covariance, 1, r)
    term = ms_r + r * max(cov2, 0.0)
    std_err = float(np.sqrt(term / r))
    df = term**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else np.inf
    quantile = float(stats.t.ppf(1 - alpha / 2, df))
    estimate = float(aucs.mean())
    wald = (estimate - quantile * std_err, estimate + quantile * std_err)
    if 0.0 < estimate < 1.0:
        centre, half = special.logit(estimate), quantile * std_err / (estimate * (1.0 - estimate))
        logit = (float(special.expit(centre - half)), float(special.expit(centre + half)))
    else:
        logit = (max(wald[0], 0.0), min(wald[1], 1.0))
    return ModalityInterval(estimate, std_err, float(df), wald, logit)


def dorfman_berbaum_metz(
    ratings: np.ndarray, truth: np.ndarray, alpha: float = 0.05, clusters: np.ndarray | None = None
) -> DBMResult:
    """DBM analysis of jackknife pseudovalues with Hillis's ddf (random readers and cases); with
    ``clusters`` one pseudovalue per cluster, the cluster being the case of the ANOVA."""
    ratings, truth = _validated(ratings, truth)
    t, r = ratings.shape[:2]
    if t < 2 or r < 2:
        raise AnalysisError("a DBM comparison needs two or more modalities and readers")
    left_out = jackknife_aucs(ratings, truth, clusters)
    c = left_out.shape[2]
    pseudo = c * empirical_aucs(ratings, truth)[:, :, None] - (c - 1) * left_out
    grand = pseudo.mean()
    m_t, m_r, m_c = pseudo.mean(axis=(1, 2)), pseudo.mean(axis=(0, 2)), pseudo.mean(axis=(0, 1))
    m_tr, m_tc, m_rc = pseudo.mean(axis=2), pseudo.mean(axis=1), pseudo.mean(axis=0)
    ms_t = r * c * float(((m_t - grand) ** 2).sum()) / (t - 1)
    ms_tr = c * float(((m_tr - m_t[:, None] - m_r[None, :] + grand) ** 2).sum()) / ((t - 1) * (r - 1))
    ms_tc = r * float(((m_tc - m_t[:, None] - m_c[None, :] + grand) ** 2).sum()) / ((t - 1) * (c - 1))
    residual = (
        pseudo
        - m_tr[:, :, None]
        - m_tc[:, None, :]
        - m_rc[None, :, :]
        + m_t[:, None, None]
        + m_r[None, :, None]
        + m_c[None, None, :]
        - grand
    )
    ms_trc = float((residual**2).sum()) / ((t - 1) * (r - 1) * (c - 1))
    denominator = ms_tr + max(ms_tc - ms_trc, 0.0)
    if denominator > 0:
        f = ms_t / denominator
        ddf = denominator**2 / (ms_tr**2 / ((t - 1) * (r - 1))) if ms_tr > 0 else np.inf
        p = float(stats.f.sf(f, t - 1, ddf))
    else:
        f, ddf, p = np.nan, np.nan, np.nan
    differences = _differences(m_t, denominator / c, r, ddf, alpha)
    return DBMResult(f, t - 1, ddf, p, differences)


_ON_THE_LOGIT_SCALE = (
    "carried to the logit scale by the delta method (se / (auc (1 - auc))), always within [0, 1]; a "
    "reader-averaged AUC of 0 or 1 keeps the Wald interval clipped to [0, 1]"
)
MODALITY_INTERVAL_METHOD = (
    f"single-modality Obuchowski-Rockette standard error (Hillis df) {_ON_THE_LOGIT_SCALE}"
)
CLUSTERED_MODALITY_INTERVAL_METHOD = (
    "single-modality Obuchowski-Rockette standard error (Hillis df) from cluster-jackknife covariances "
    f"(a woman's breasts left out together) {_ON_THE_LOGIT_SCALE}"
)

AUC_INTERVAL_METHOD = (
    "DeLong standard error on the logit scale (always within [0, 1]); at AUC 0 or 1 an exact one-sided "
    "Clopper-Pearson bound on min(positives, negatives) comparisons"
)
CLUSTERED_AUC_INTERVAL_METHOD = (
    "Obuchowski's clustered standard error (Biometrics 1997; a woman's breasts one unit) on the logit scale "
    "(always within [0, 1]); at AUC 0 or 1 an exact one-sided Clopper-Pearson bound on min(women with a "
    "positive, women with a negative) comparisons"
)


def delong_auc_ci(
    ratings: np.ndarray, truth: np.ndarray, alpha: float = 0.05, clusters: np.ndarray | None = None
) -> tuple[float, float, float]:
    """One reader's empirical AUC with a 1 - alpha interval (:data:`AUC_INTERVAL_METHOD`, with
    ``clusters`` :data:`CLUSTERED_AUC_INTERVAL_METHOD`): (auc, low, high). The standard error is
    carried to the logit scale by the delta method (se / (auc (1 - auc))), so the interval never
    leaves [0, 1]; where the AUC is 0 or 1 the standard error is 0 and the interval is the exact
    one-sided bound instead, never zero-width."""
    ratings = np.asarray(ratings, dtype=np.float64)[None, None, :]
    auc = float(empirical_aucs(ratings, truth)[0, 0])
    truth = np.asarray(truth).astype(bool).ravel()
    if auc in (0.0, 1.0):
        grouped = _clusters(clusters, truth.size)
        units = np.arange(truth.size) if grouped is None else grouped[1]
        pairs = min(np.unique(units[truth]).size, np.unique(units[~truth]).size)
        bound = float(alpha ** (1.0 / pairs))  # Clopper-Pearson, every one of ``pairs`` ordered right
        return (auc, bound, 1.0) if auc == 1.0 else (auc, 0.0, 1.0 - bound)
    std_err = float(np.sqrt(auc_covariance(ratings, truth, "delong", clusters)[0, 0]))
    half = float(stats.norm.ppf(1 - alpha / 2)) * std_err / (auc * (1.0 - auc))
    centre = float(np.log(auc / (1.0 - auc)))
    return auc, float(special.expit(centre - half)), float(special.expit(centre + half))
