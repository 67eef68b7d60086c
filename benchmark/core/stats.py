"""Summary statistics: mean and Student-t confidence intervals over episodes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class Summary:
    """Mean of `n` scores and the half-width of its confidence interval (None when n < 2)."""

    mean: float
    ci95: float | None
    n: int


def mean_ci(scores: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean and Student-t CI half-width: t_{(1+c)/2, n-1} * s / sqrt(n), s the sample std."""
    n = len(scores)
    if n == 0:
        raise ValueError("cannot summarise an empty list of scores")
    require_finite(scores)
    mean = math.fsum(scores) / n
    if n < 2:
        return Summary(mean=mean, ci95=None, n=n)
    variance = math.fsum((x - mean) ** 2 for x in scores) / (n - 1)
    t = float(stats.t.ppf((1 + confidence) / 2, df=n - 1))
    return Summary(mean=mean, ci95=t * math.sqrt(variance / n), n=n)


def require_finite(scores: Sequence[float]) -> None:
    """Refuse NaN and infinite scores: they would compare as neither better nor worse."""
    bad = [(i, x) for i, x in enumerate(scores) if not math.isfinite(x)]
    if bad:
        i, x = bad[0]
        raise ValueError(f"{len(bad)} score(s) are not finite numbers, first at episode {i}: {x}")


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison of two methods on the same `n` episodes: mean(a - b), its 95% CI
    half-width, the two-sided p-value and the test that gave it."""

    mean_difference: float
    ci95: float | None
    p_value: float
    n: int
    test: str


def paired_test(a: Sequence[float], b: Sequence[float], test: str = "t") -> PairedTest:
    """Compare per-episode scores `a` and `b` of the same episodes, in the same order.

    `test="t"` is the paired Student t-test, `"wilcoxon"` the Wilcoxon signed-rank test. Equal
    scores on every episode give p = 1 (no evidence of a difference).
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths, got {len(a)} and {len(b)}")
    if test not in ("t", "wilcoxon"):
        raise ValueError(f"unknown paired test {test!r}; use 't' or 'wilcoxon'")
    require_finite(a)
    require_finite(b)
    differences = [x - y for x, y in zip(a, b, strict=True)]
    summary = mean_ci(differences)
    if all(d == 0 for d in differences) or len(differences) < 2:
        p_value = 1.0
    elif test == "t" and len(set(differences)) == 1:
        p_value = 0.0  # a constant non-zero difference is certain (scipy would warn, then NaN)
    elif test == "t":
        p_value = float(stats.ttest_rel(a, b).pvalue)
    else:
        p_value = float(stats.wilcoxon(a, b).pvalue)
    return PairedTest(summary.mean, summary.ci95, p_value, summary.n, test)
