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
    mean = math.fsum(scores) / n
    if n < 2:
        return Summary(mean=mean, ci95=None, n=n)
    variance = math.fsum((x - mean) ** 2 for x in scores) / (n - 1)
    t = float(stats.t.ppf((1 + confidence) / 2, df=n - 1))
    return Summary(mean=mean, ci95=t * math.sqrt(variance / n), n=n)
