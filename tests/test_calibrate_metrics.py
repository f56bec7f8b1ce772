"""Calibration metrics on cases whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from logo_cli import metrics


def test_perfectly_ranked_uncertainty_scores_one():
    err = np.linspace(0.1, 3.0, 50)
    unc = np.exp(err)  # monotone but not linear: rank measures 1, Pearson below 1
    c = metrics.correlations(unc, err)
    assert c["spearman"] == pytest.approx(1.0)
    assert 0.8 < c["pearson"] < 0.999
    assert metrics.flag_worst_auroc(unc, err) == pytest.approx(1.0)


def test_reversed_uncertainty_scores_zero():
    err = np.linspace(0.1, 3.0, 50)
    unc = -err
    assert metrics.correlations(unc, err)["spearman"] == pytest.approx(-1.0)
    assert metrics.correlations(unc, err)["pearson"] == pytest.approx(-1.0)
    assert metrics.flag_worst_auroc(unc, err) == pytest.approx(0.0)


def test_pearson_of_a_known_pair():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 4.0])
    # cov = 1.0 (population), var = 1.25 each -> r = 0.8; Spearman the same for these ranks
    c = metrics.correlations(x, y)
    assert c["pearson"] == pytest.approx(0.8)
    assert c["spearman"] == pytest.approx(0.8)


def test_constant_uncertainty_gives_none_not_nan():
    c = metrics.correlations(np.ones(10), np.arange(10.0))
    assert c == {"spearman": None, "pearson": None}
    assert metrics.flag_worst_auroc(np.ones(10), np.arange(10.0)) == pytest.approx(0.5)


def test_rank_auroc_counts_pairs_and_half_ties():
    # positives {3, 1}, negatives {2, 0}: pairs (3>2, 3>0, 1<2, 1>0) -> 3/4
    assert metrics.rank_auroc([3, 2, 1, 0], [True, False, True, False]) == pytest.approx(0.75)
    # one tie between a positive and a negative counts 1/2: pairs (1=1 -> .5, 1>0) -> .75
    assert metrics.rank_auroc([1, 1, 0], [True, False, False]) == pytest.approx(0.75)
    assert metrics.rank_auroc([1, 2], [True, True]) is None


def test_rank_auroc_matches_pair_counting_on_random_data():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 20, 300).astype(float)  # many ties
    y = rng.random(300) < 0.3
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
        len(pos) * len(neg)
    )
    assert metrics.rank_auroc(s, y) == pytest.approx(brute)


def test_worst_fraction_takes_the_top_tenth():
    err = np.array([5.0, 1, 2, 9, 3, 4, 0, 7, 6, 8, 10, 11])
    labels = metrics.worst_fraction_labels(err, 0.1)  # ceil(1.2) = 2 rows
    assert labels.sum() == 2 and set(np.nonzero(labels)[0]) == {10, 11}


def test_bins_by_uncertainty_have_equal_counts_and_rising_error():
    rng = np.random.default_rng(1)
    unc = rng.random(1000)
    err = unc * 2 + 0.01 * rng.random(1000)
    bins = metrics.binned_by_uncertainty(unc, err, 10)
    assert [b["count"] for b in bins] == [100] * 10
    means = [b["error_mean"] for b in bins]
    assert means == sorted(means)
    assert bins[0]["uncertainty_hi"] <= bins[1]["uncertainty_lo"]


def test_state_rms_error_uses_the_scale():
    pred = np.array([[1.0, 2.0], [0.0, 0.0]])
    true = np.array([[0.0, 0.0], [0.0, 0.0]])
    std = np.array([1.0, 2.0])
    # row 0: z = (1, 1) -> rms 1; row 1: 0
    np.testing.assert_allclose(metrics.state_rms_error(pred, true, std), [1.0, 0.0])


def test_quantiles_summary_and_group_sums():
    x = np.arange(101.0)
    q = metrics.quantiles(x)
    assert q == {"p5": 5.0, "p25": 25.0, "p50": 50.0, "p75": 75.0, "p95": 95.0}
    assert metrics.quantiles(np.array([]))["p50"] is None
    s = metrics.summary(np.array([1.0, 3.0]))
    assert s == {"count": 2, "mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    sums = metrics.group_sums(np.array([7, 3, 7, 3, 9]), np.array([1, 2, 3, 4, 5]))
    np.testing.assert_allclose(sums, [6, 4, 5])  # keys sorted: 3, 7, 9
