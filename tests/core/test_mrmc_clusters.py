"""Cases clustered by woman: the cluster jackknife and Obuchowski's clustered ROC estimator
(Obuchowski, Biometrics 1997, "Nonparametric analysis of clustered ROC curve data").

The property that matters: a study whose every case is entered twice, the two copies one woman's
two breasts, carries no more information than the original, so the clustered analyses of it must
give the original's standard errors, F and p; treating the copies as independent narrows them.
"""

from __future__ import annotations

import numpy as np
import pytest

from gmic_core import mrmc
from gmic_core.errors import AnalysisError
from tests.core.test_mrmc import _ratings


@pytest.fixture(scope="module")
def vandyke(fixtures_dir):
    return _ratings(fixtures_dir / "mrmc" / "vandyke.csv")


@pytest.fixture(scope="module")
def duplicated(vandyke):
    """Van Dyke with every case twice, the copies side by side in one cluster."""
    ratings, truth = vandyke
    return np.repeat(ratings, 2, axis=2), np.repeat(truth, 2), np.repeat(np.arange(truth.size), 2)


def _same_analysis(first, second, rel):
    assert second.f == pytest.approx(first.f, rel=rel)
    assert second.ddf == pytest.approx(first.ddf, rel=rel)
    assert second.p == pytest.approx(first.p, rel=rel)
    (one,), (other,) = first.differences, second.differences
    assert other.std_err == pytest.approx(one.std_err, rel=rel)
    assert other.ci == pytest.approx(one.ci, rel=rel)


def test_duplicated_breasts_gain_no_precision_in_the_jackknife_analyses(vandyke, duplicated):
    ratings, truth, clusters = duplicated
    original = mrmc.obuchowski_rockette(*vandyke)
    clustered = mrmc.obuchowski_rockette(ratings, truth, clusters=clusters)
    _same_analysis(original, clustered, rel=1e-12)
    for one, other in zip(original.modalities, clustered.modalities, strict=True):
        assert other.std_err == pytest.approx(one.std_err, rel=1e-12)
        assert other.logit_ci == pytest.approx(one.logit_ci, rel=1e-12)
    _same_analysis(
        mrmc.dorfman_berbaum_metz(*vandyke),
        mrmc.dorfman_berbaum_metz(ratings, truth, clusters=clusters),
        1e-12,
    )
    independent = mrmc.obuchowski_rockette(ratings, truth)
    assert independent.differences[0].std_err < 0.9 * original.differences[0].std_err
    assert independent.p < original.p


def test_duplicated_breasts_gain_no_precision_in_obuchowskis_estimator(vandyke, duplicated):
    """On the duplicated set the clustered estimator equals itself on the original's singletons
    (which is close to, not equal to, DeLong's)."""
    ratings, truth, clusters = duplicated
    singletons = np.arange(truth.size // 2)
    original = mrmc.obuchowski_rockette(*vandyke, covariance="delong", clusters=singletons)
    clustered = mrmc.obuchowski_rockette(ratings, truth, covariance="delong", clusters=clusters)
    _same_analysis(original, clustered, rel=1e-10)
    assert original.f == pytest.approx(mrmc.obuchowski_rockette(*vandyke, covariance="delong").f, rel=0.02)
    independent = mrmc.obuchowski_rockette(ratings, truth, covariance="delong")
    assert independent.differences[0].std_err < 0.9 * original.differences[0].std_err
    for reader in range(ratings.shape[1]):
        one = mrmc.delong_auc_ci(vandyke[0][0, reader], vandyke[1], clusters=singletons)
        assert mrmc.delong_auc_ci(ratings[0, reader], truth, clusters=clusters) == pytest.approx(
            one, rel=1e-10
        )
        _, low, high = mrmc.delong_auc_ci(ratings[0, reader], truth)
        assert high - low < one[2] - one[1]


def _obuchowski_by_the_formula(ratings, truth, clusters):
    """Obuchowski (1997) section 2, written out with loops: the covariance of two readings' AUCs."""
    labels = sorted(set(clusters))
    readings = [ratings[i, j] for i in range(ratings.shape[0]) for j in range(ratings.shape[1])]
    positives = [k for k in range(truth.size) if truth[k]]
    negatives = [k for k in range(truth.size) if not truth[k]]
    m, n, count = len(positives), len(negatives), len(labels)

    def psi(x, y):
        return 1.0 if x > y else 0.5 if x == y else 0.0

    components = []
    for scores in readings:
        auc = sum(psi(scores[p], scores[q]) for p in positives for q in negatives) / (m * n)
        v10, v01 = [], []
        for label in labels:
            own_positives = [p for p in positives if clusters[p] == label]
            own_negatives = [q for q in negatives if clusters[q] == label]
            placed = sum(psi(scores[p], scores[q]) for p in own_positives for q in negatives) / n
            v10.append(placed - len(own_positives) * auc)
            placed = sum(psi(scores[p], scores[q]) for q in own_negatives for p in positives) / m
            v01.append(placed - len(own_negatives) * auc)
        components.append((v10, v01))
    covariance = np.empty((len(readings), len(readings)))
    for a, (v10_a, v01_a) in enumerate(components):
        for b, (v10_b, v01_b) in enumerate(components):
            s10 = count / ((count - 1) * m) * sum(x * y for x, y in zip(v10_a, v10_b, strict=True))
            s01 = count / ((count - 1) * n) * sum(x * y for x, y in zip(v01_a, v01_b, strict=True))
            s11_ab = count / (count - 1) * sum(x * y for x, y in zip(v10_a, v01_b, strict=True))
            s11_ba = count / (count - 1) * sum(x * y for x, y in zip(v10_b, v01_a, strict=True))
            covariance[a, b] = s10 / m + s01 / n + (s11_ab + s11_ba) / (m * n)
    return covariance


def test_the_clustered_delong_covariance_is_obuchowskis_formula():
    """Women with one positive and one negative breast, two negatives, two positives, one breast;
    ratings on a 1-5 scale (many ties); two modalities, two readers."""
    rng = np.random.default_rng(97)
    truth = np.array([1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 1], dtype=bool)
    clusters = np.array(["a", "a", "b", "b", "c", "c", "d", "e", "e", "f", "g", "g", "h", "i"])
    ratings = (rng.integers(1, 6, (2, 2, truth.size)) + truth).astype(float)
    expected = _obuchowski_by_the_formula(ratings, truth, clusters)
    np.testing.assert_allclose(mrmc.auc_covariance(ratings, truth, "delong", clusters), expected, rtol=1e-12)
    auc, low, high = mrmc.delong_auc_ci(ratings[1, 0], truth, clusters=clusters)
    assert auc == mrmc.empirical_aucs(ratings, truth)[1, 0]
    assert 0 < low < auc < high < 1
    half = 1.959963984540054 * np.sqrt(expected[2, 2]) / (auc * (1 - auc))  # the delta method
    assert np.log(high / (1 - high)) - np.log(auc / (1 - auc)) == pytest.approx(half, rel=1e-9)


def test_the_cluster_jackknife_leaves_out_each_cluster_whole():
    rng = np.random.default_rng(3)
    truth = rng.random(30) < 0.4
    clusters = np.repeat(np.arange(15), 2)[rng.permutation(30)]
    ratings = rng.normal(size=(2, 3, 30)) + truth
    left_out = mrmc.jackknife_aucs(ratings, truth, clusters)
    assert left_out.shape == (2, 3, 15)
    for cluster in (0, 6, 14):
        keep = clusters != cluster
        np.testing.assert_allclose(
            left_out[:, :, cluster], mrmc.empirical_aucs(ratings[:, :, keep], truth[keep])
        )
    np.testing.assert_array_equal(
        mrmc.jackknife_aucs(ratings, truth, np.arange(30)), mrmc.jackknife_aucs(ratings, truth)
    )


def test_an_exact_bound_at_auc_one_counts_women_not_breasts():
    truth = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    ratings = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3])
    alone = mrmc.delong_auc_ci(ratings, truth)
    assert alone == (1.0, pytest.approx(0.05 ** (1 / 3)), 1.0)
    clustered = mrmc.delong_auc_ci(ratings, truth, clusters=np.array([0, 0, 1, 1, 2, 2]))
    assert clustered == (1.0, pytest.approx(0.05 ** (1 / 2)), 1.0)  # positives in women 0 and 2 only


@pytest.mark.parametrize(
    ("clusters", "message"),
    [
        (np.arange(5), "6 cases but 5 cluster labels"),
        (np.zeros(6), "at least two clusters"),
        (np.array([0, 0, 1, 1, 0, 1]), "cluster 0 holds every positive case"),
    ],
)
def test_bad_clusters_say_what_is_wrong(clusters, message):
    truth = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    ratings = np.arange(24.0).reshape(2, 2, 6)
    with pytest.raises(AnalysisError, match=message):
        mrmc.obuchowski_rockette(ratings, truth, clusters=clusters)
