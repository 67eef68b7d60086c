"""Confidence intervals against scipy."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from benchmark.analysis.coverage import beta_binomial, coverage_table
from benchmark.core.stats import interval_summary, mean_ci, paired_test, wilson_design_effect


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


def test_wilson_design_effect_matches_the_formula_and_is_never_empty():
    scores, q = [0.5, 0.7, 0.6, 0.8], 10
    n, p = 4, 0.65
    var_mean = sum((x - p) ** 2 for x in scores) / 3 / 4
    n_eff = min(n * q, p * (1 - p) / var_mean)
    z = stats.t.ppf(0.975, 3)
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff**2)) / (1 + z * z / n_eff)
    got = wilson_design_effect(scores, q)
    assert got.mean == pytest.approx(p) and got.n == 4
    assert got.ci95 == pytest.approx(max(centre + half - p, p - centre + half), rel=1e-12)
    ceiling = wilson_design_effect([1.0] * 10, 25)  # t gives 0 here: every episode perfect
    assert mean_ci([1.0] * 10).ci95 == 0.0 and 0.01 < ceiling.ci95 < 0.05
    assert interval_summary(scores, None) == (mean_ci(scores), "t")
    assert interval_summary(scores, q) == (got, "wilson-deff")


def test_measured_coverage_holds_for_wilson_and_fails_for_t_near_the_ceiling():
    near = beta_binomial("near", 0.97, 20, 25)
    rows = {interval: cover for _, interval, cover in coverage_table([near], 400, 1, (10, 100))}
    assert rows["wilson-deff"][0] >= 0.93 and rows["wilson-deff"][1] >= 0.93
    assert rows["t"][0] < 0.93 <= rows["wilson-deff"][0]


def test_paired_bootstrap_is_deterministic_and_agrees_with_t():
    rng = random.Random(11)
    a = [rng.random() for _ in range(60)]
    b = [x - 0.04 + 0.08 * rng.random() for x in a]
    boot, t = paired_test(a, b, "bootstrap"), paired_test(a, b)
    assert boot == paired_test(a, b, "bootstrap") and boot.test == "bootstrap"
    assert boot.mean_difference == pytest.approx(t.mean_difference)
    assert boot.ci95 == pytest.approx(t.ci95, rel=0.15)
    assert (boot.p_value < 0.05) == (t.p_value < 0.05)
    same = paired_test(a, a, "bootstrap")
    assert same.p_value == 1.0
    noise = [x + 0.01 * (rng.random() - 0.5) for x in a]
    assert paired_test(noise, a, "bootstrap").p_value > 0.05


def test_stats_check_prints_the_coverage_table(capsys):
    from benchmark.cli import main

    assert main(["stats-check", "--trials", "20"]) == 0
    out = capsys.readouterr().out
    assert "| near the ceiling 5w-5q, mean 0.97" in out and "| wilson-deff" in out
    assert "resampled clinc150 protonet 5w-1s-5q" in out and "1000 episodes" in out
