"""Confidence intervals against scipy."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from benchmark.core.stats import mean_ci, paired_test


@pytest.mark.parametrize("n", [2, 5, 30, 1000])
def test_ci_matches_scipy_t_interval(n):
    rng = random.Random(n)
    scores = [rng.random() for _ in range(n)]
    summary = mean_ci(scores)
    low, high = stats.t.interval(0.95, n - 1, loc=sum(scores) / n, scale=stats.sem(scores))
    assert summary.n == n
    assert summary.mean == pytest.approx((low + high) / 2, abs=1e-12)
    assert summary.ci95 == pytest.approx((high - low) / 2, rel=1e-9)


def test_known_values():
    summary = mean_ci([0.0, 1.0])
    assert summary.mean == 0.5
    # t_{0.975,1} = 12.7062..., s = sqrt(0.5), sem = 0.5
    assert summary.ci95 == pytest.approx(12.706204736 * 0.5, rel=1e-8)
    assert mean_ci([0.8] * 50).ci95 == 0.0


def test_single_and_empty():
    assert mean_ci([0.3]).ci95 is None
    with pytest.raises(ValueError):
        mean_ci([])


def test_other_confidence():
    scores = [0.1, 0.4, 0.35, 0.8]
    low, high = stats.t.interval(0.9, 3, loc=sum(scores) / 4, scale=stats.sem(scores))
    assert mean_ci(scores, confidence=0.9).ci95 == pytest.approx((high - low) / 2)
    assert not math.isnan(mean_ci(scores).ci95)


def test_paired_test_matches_scipy():
    rng = random.Random(7)
    a = [rng.random() for _ in range(40)]
    b = [x - 0.05 + 0.1 * rng.random() for x in a]
    result = paired_test(a, b)
    assert result.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert result.mean_difference == pytest.approx(sum(a) / 40 - sum(b) / 40, abs=1e-12)
    assert result.n == 40
    wilcoxon = paired_test(a, b, test="wilcoxon")
    assert wilcoxon.p_value == pytest.approx(stats.wilcoxon(a, b).pvalue, rel=1e-12)


def test_non_finite_scores_are_refused():
    with pytest.raises(
        ValueError, match=r"1 score\(s\) are not finite numbers, first at episode 1: nan"
    ):
        mean_ci([0.5, float("nan"), 0.7])
    with pytest.raises(ValueError, match="first at episode 0: inf"):
        paired_test([float("inf"), 0.5], [0.5, 0.5])


def test_paired_test_edge_cases():
    assert paired_test([0.5, 0.7], [0.5, 0.7]).p_value == 1.0
    assert paired_test([1.0, 1.0, 1.0], [0.0, 0.0, 0.0]).p_value == 0.0
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([0.1], [0.1, 0.2])
