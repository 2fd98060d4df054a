"""MRMC statistics against published analyses of the Van Dyke and Franken rating sets.

The published figures reproduced here:

* Van Dyke et al. (1993), 5 readers x 2 modalities x 114 cases, OR with jackknife covariances,
  random readers and cases: MRMCaov's README, "Analyze the VanDyke dataset" with
  ``mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke)`` and ``summary``
  (https://github.com/brian-j-smith/MRMCaov, README.md): Var 0.0008022883, Cov1 0.0003466137,
  Cov2 0.0003440748, Cov3 0.0002390284, MS(T) 0.004796171, MS(T:R) 0.0005510306, F 4.456319 on
  1 and 15.25967 df, p 0.05166569, difference -0.04380032 (StdErr 0.02074862) with 95 % CI
  [-0.0879594986, 0.0003588544], and the per-treatment CIs 0.8970370 [0.8252236, 0.9688505] (df
  12.74465) and 0.9408374 [0.8941378, 0.9875369] (df 12.71019). With DeLong covariances
  (``cov = DeLong``): F 4.4849 on 1 and 15.066 df, p 0.05123.
* The same data set as RJafroc's ``dataset02``: per-reader AUCs (``UtilFigureOfMerit``) 0.91964573
  0.85877617 0.90386473 0.97310789 0.82979066 / 0.94782609 0.90531401 0.92173913 0.99935588
  0.92995169 (RJafroc book, "Obuchowski Rockette Hillis (ORH) Analysis", dpc10ster/RJafrocBook), and
  the DBM-Hillis CI [-0.0879595, 0.0003588544] of the difference (same chapter's DBM "open"
  implementation checked against RJafroc).
* Franken et al. (1992), 4 readers x 2 modalities x 100 cases (RJafroc ``dataset03``), OR: RJafroc
  vignette "Quick Start: Running DBM-OR analysis" (dpc10ster/RJafroc): per-reader AUCs 0.85345997
  0.86499322 0.85730439 0.81524197 / 0.84961556 0.84350972 0.84011759 0.81433740, F 4.6940577 on
  1 and 3 df, p 0.11883786, difference 0.010854817 (StdErr 0.0050101218), CI [-0.0050896269,
  0.026799261], per-treatment CIs [0.79908282, 0.89641696] (df 70.121788) and [0.79048429,
  0.88330585] (df 253.644028).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import special, stats

from gmic_core.metrics import roc_auc
from gmic_core.mrmc import (
    auc_covariance,
    delong_auc_ci,
    dorfman_berbaum_metz,
    empirical_aucs,
    jackknife_aucs,
    obuchowski_rockette,
)


def _ratings(path):
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    modalities = sorted({row["modality"] for row in rows})
    readers = sorted({row["reader"] for row in rows})
    cases = sorted({row["case"] for row in rows}, key=int)
    ratings = np.full((len(modalities), len(readers), len(cases)), np.nan)
    truth = np.zeros(len(cases), dtype=bool)
    for row in rows:
        case = cases.index(row["case"])
        ratings[modalities.index(row["modality"]), readers.index(row["reader"]), case] = float(row["rating"])
        truth[case] = row["truth"] == "1"
    return ratings, truth


@pytest.fixture(scope="module")
def vandyke(fixtures_dir):
    return _ratings(fixtures_dir / "mrmc" / "vandyke.csv")


@pytest.fixture(scope="module")
def franken(fixtures_dir):
    return _ratings(fixtures_dir / "mrmc" / "franken.csv")


def test_van_dyke_reader_aucs(vandyke):
    published = [
        [0.91964573, 0.85877617, 0.90386473, 0.97310789, 0.82979066],
        [0.94782609, 0.90531401, 0.92173913, 0.99935588, 0.92995169],
    ]
    np.testing.assert_allclose(empirical_aucs(*vandyke), published, atol=5e-9)
    np.testing.assert_allclose(empirical_aucs(*vandyke).mean(axis=1), [0.89703704, 0.94083736], atol=5e-9)


def test_van_dyke_obuchowski_rockette_jackknife(vandyke):
    result = obuchowski_rockette(*vandyke, covariance="jackknife")
    published = {
        "var": 0.0008022883,
        "cov1": 0.0003466137,
        "cov2": 0.0003440748,
        "cov3": 0.0002390284,
        "ms_t": 0.004796171,
        "ms_tr": 0.0005510306,
    }
    for name, value in published.items():
        assert getattr(result, name) == pytest.approx(value, rel=2e-7), name
    assert result.f == pytest.approx(4.456319, rel=1e-6)
    assert result.df1 == 1
    assert result.ddf == pytest.approx(15.25967, rel=1e-6)
    assert result.p == pytest.approx(0.05166569, rel=1e-6)
    (difference,) = result.differences
    assert difference.estimate == pytest.approx(-0.04380032, rel=1e-6)
    assert difference.std_err == pytest.approx(0.02074862, rel=1e-6)
    assert difference.ci == pytest.approx((-0.0879594986, 0.0003588544), rel=1e-6)
    assert difference.p == pytest.approx(0.05166569, rel=1e-6)
    first, second = result.modalities
    assert first.ci == pytest.approx((0.8252236, 0.9688505), abs=1e-7)
    assert first.df == pytest.approx(12.74465, rel=1e-6)
    assert second.ci == pytest.approx((0.8941378, 0.9875369), abs=1e-7)
    assert second.df == pytest.approx(12.71019, rel=1e-6)


def test_van_dyke_dbm_agrees_with_or_jackknife_and_the_published_dbm(vandyke):
    dbm = dorfman_berbaum_metz(*vandyke)
    assert dbm.f == pytest.approx(4.456319, rel=1e-6)
    assert dbm.ddf == pytest.approx(15.25967, rel=1e-6)
    assert dbm.p == pytest.approx(0.05166569, rel=1e-6)
    assert dbm.differences[0].ci == pytest.approx((-0.0879595, 0.0003588544), rel=1e-6)


def test_franken_obuchowski_rockette(franken):
    published = [
        [0.85345997, 0.86499322, 0.85730439, 0.81524197],
        [0.84961556, 0.84350972, 0.84011759, 0.81433740],
    ]
    result = obuchowski_rockette(*franken)
    np.testing.assert_allclose(result.aucs, published, atol=5e-9)
    # Cov2 < Cov3 here, so max(Cov2 - Cov3, 0) = 0 and Hillis's ddf falls to (t - 1)(r - 1) = 3.
    assert result.f == pytest.approx(4.6940577, rel=1e-7)
    assert result.ddf == pytest.approx(3.0)
    assert result.p == pytest.approx(0.11883786, rel=1e-7)
    (difference,) = result.differences
    assert difference.estimate == pytest.approx(0.010854817, rel=1e-7)
    assert difference.std_err == pytest.approx(0.0050101218, rel=1e-7)
    assert difference.ci == pytest.approx((-0.0050896269, 0.026799261), rel=1e-7)
    assert result.modalities[0].ci == pytest.approx((0.79908282, 0.89641696), abs=1e-8)
    assert result.modalities[0].df == pytest.approx(70.121788, rel=1e-7)
    assert result.modalities[1].ci == pytest.approx((0.79048429, 0.88330585), abs=1e-8)
    assert result.modalities[1].df == pytest.approx(253.644028, rel=1e-7)


def test_delong_and_jackknife_covariances_agree_closely(vandyke):
    jackknife = auc_covariance(*vandyke, "jackknife")
    delong = auc_covariance(*vandyke, "delong")
    # The jackknife variance of a U-statistic exceeds DeLong's by a factor near C / (C - 1) per class.
    np.testing.assert_allclose(np.diag(delong), np.diag(jackknife), rtol=0.05)


def test_van_dyke_obuchowski_rockette_delong_matches_mrmcaov(vandyke):
    """MRMCaov's ``mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke,
    cov = DeLong)``: F 4.4849 on 1 and 15.066 df, p 0.05123 (the figures issue 22 pins, as MRMCaov
    prints them)."""
    result = obuchowski_rockette(*vandyke, covariance="delong")
    assert result.means == pytest.approx([0.89703704, 0.94083736], abs=5e-9)
    assert result.f == pytest.approx(4.4849, abs=5e-5)
    assert result.df1 == 1
    assert result.ddf == pytest.approx(15.066, abs=5e-4)
    assert result.p == pytest.approx(0.05123, abs=5e-6)


def test_a_readers_delong_interval_stays_within_zero_and_one():
    truth = np.array([False] * 3 + [True] * 3)
    auc, low, high = delong_auc_ci(np.array([0.1, 0.2, 0.65, 0.6, 0.8, 0.9]), truth)
    assert auc == pytest.approx(8 / 9)
    assert 0.0 < low < auc < high < 1.0  # on the logit scale; the normal interval would pass 1


def test_delong_variance_of_one_reader_by_its_definition():
    rng = np.random.default_rng(0)
    truth = np.repeat([True, False], [7, 9])
    ratings = rng.integers(1, 5, truth.size).astype(float)  # many ties
    positives, negatives = ratings[truth], ratings[~truth]
    kernel = (positives[:, None] > negatives[None, :]) + 0.5 * (positives[:, None] == negatives[None, :])
    expected = np.var(kernel.mean(axis=1), ddof=1) / 7 + np.var(kernel.mean(axis=0), ddof=1) / 9
    assert auc_covariance(ratings[None, None], truth, "delong")[0, 0] == pytest.approx(expected)
    auc, low, high = delong_auc_ci(ratings, truth)
    logit = special.logit
    assert logit(auc) - logit(low) == pytest.approx(logit(high) - logit(auc))
    assert auc == pytest.approx(roc_auc(truth, ratings))
    half = stats.norm.ppf(0.975) * np.sqrt(expected) / (auc * (1 - auc))  # the delta method
    assert logit(high) - logit(auc) == pytest.approx(half)


def test_jackknife_aucs_are_the_aucs_without_each_case():
    rng = np.random.default_rng(1)
    truth = rng.random(30) < 0.4
    ratings = rng.normal(size=(2, 3, 30)) + truth
    left_out = jackknife_aucs(ratings, truth)
    for case in (0, 7, 29):
        keep = np.arange(30) != case
        np.testing.assert_allclose(left_out[:, :, case], empirical_aucs(ratings[:, :, keep], truth[keep]))


def test_binormal_readers_recover_their_true_aucs():
    """Simulated readers with known AUCs: negatives N(0, 1), positives N(mu, 1), so AUC = Phi(mu / sqrt 2).
    Two modalities differing by 0.05 in every reader's AUC; the CIs cover the truth."""
    rng = np.random.default_rng(2026)
    true_aucs = np.array([[0.78, 0.80, 0.82, 0.84, 0.86], [0.83, 0.85, 0.87, 0.89, 0.91]])
    truth = np.repeat([True, False], [150, 250])
    case_effect = rng.normal(size=truth.size)  # shared by readers and modalities, as in real studies
    shifts = np.sqrt(2) * stats.norm.ppf(true_aucs)
    noise = rng.normal(size=(2, 5, truth.size))
    ratings = np.sqrt(0.5) * case_effect + np.sqrt(0.5) * noise + shifts[:, :, None] * truth
    for i in range(2):
        for j in range(5):
            _, low, high = delong_auc_ci(ratings[i, j], truth)
            assert low <= true_aucs[i, j] <= high
    for method in ("jackknife", "delong"):
        result = obuchowski_rockette(ratings, truth, covariance=method)
        for modality, interval in enumerate(result.modalities):
            assert interval.ci[0] <= true_aucs[modality].mean() <= interval.ci[1]
        low, high = result.differences[0].ci
        assert low <= -0.05 <= high


def test_bad_rating_tables_raise_value_errors():
    truth = np.array([True, False, True])
    with pytest.raises(ValueError, match="modalities, readers, cases"):
        obuchowski_rockette(np.zeros((2, 2)), truth)
    with pytest.raises(ValueError, match="every reader must rate"):
        obuchowski_rockette(np.array([[[1.0, np.nan, 2.0]] * 2] * 2), truth)
    with pytest.raises(ValueError, match="both classes"):
        obuchowski_rockette(np.zeros((2, 2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="two readers"):
        obuchowski_rockette(np.zeros((2, 1, 3)), truth)


def test_a_table_without_variance_gives_nan_statistics_and_no_warning():
    """Two readers who rate every case alike in both modalities (a tiny table): nothing varies, so
    the F tests and the t of a zero difference are undefined (NaN), and numpy is never asked to
    divide by zero (the test run turns RuntimeWarnings from gmic_core into errors)."""
    truth = np.array([True, False, True, False])
    ratings = np.broadcast_to(np.array([0.9, 0.2, 0.6, 0.4]), (2, 2, 4))
    for result in (obuchowski_rockette(ratings, truth), dorfman_berbaum_metz(ratings, truth)):
        assert np.isnan(result.f)
        assert np.isnan(result.p)
        (difference,) = result.differences
        assert difference.estimate == 0
        assert np.isnan(difference.t)


def test_a_reader_averaged_interval_on_the_logit_scale_stays_within_zero_and_one():
    """Two readers who disagree on four cases: the published Wald interval leaves [0, 1], its logit
    counterpart does not."""
    truth = np.array([1, 1, 0, 0])
    ratings = np.array([[[4, 3, 2, 1], [1, 3, 2, 4]]], dtype=float)
    interval = obuchowski_rockette(ratings, truth).modalities[0]
    assert interval.ci[0] < 0 or interval.ci[1] > 1
    low, high = interval.logit_ci
    assert 0 < low < interval.estimate < high < 1
