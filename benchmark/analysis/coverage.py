"""How often our 95% intervals hold the true mean: cells simulated from known score
distributions (binomial query scores around per-episode difficulties, near-ceiling accuracies,
and real per-episode score vectors resampled from stored records), at the episode counts users
run, for the Student-t interval, the Wilson interval with design effect, and a percentile
bootstrap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from benchmark.core.stats import mean_ci, wilson_design_effect
from benchmark.engine.store import Record, spec_label

SIZES = (10, 12, 30, 100, 1000)  # 12: ARSC's episodes per cell
TARGET = 0.93  # below this an interval is not used
BOOTSTRAP_DRAWS = 200
Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Scenario:
    """Episodes of `queries` queries whose scores `draw` gives, with true mean `truth`."""

    name: str
    draw: Draw
    truth: float
    queries: int


def beta_binomial(name: str, mean: float, concentration: float, queries: int) -> Scenario:
    """Each episode a difficulty p ~ Beta(mean, concentration), its accuracy Binomial(q, p)/q."""
    a, b = mean * concentration, (1 - mean) * concentration

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.binomial(queries, rng.beta(a, b, n)) / queries

    return Scenario(name, draw, mean, queries)


def resampled(record: Record) -> Scenario:
    """A record's per-episode scores as the population (its mean the truth), drawn with
    replacement."""
    population = np.asarray(record["per_episode"], dtype=np.float64)

    def draw(rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.choice(population, n)

    name = f"resampled {record['task']} {record['method']} {spec_label(record)}"
    queries = record["n_way"] * (record["n_query"] or 1)
    return Scenario(name, draw, float(population.mean()), queries)


def built_in_scenarios() -> list[Scenario]:
    return [
        beta_binomial("1-shot 5w-15q, mean 0.60", 0.60, 8, 75),
        beta_binomial("5w-5q, mean 0.96", 0.96, 15, 25),
        beta_binomial("near the ceiling 5w-5q, mean 0.97", 0.97, 20, 25),
        beta_binomial("near the floor 2w-5q, mean 0.55", 0.55, 4, 10),
    ]


def _t(x: np.ndarray, queries: int) -> tuple[float, float]:
    s = mean_ci(x.tolist())
    return s.mean - s.ci95, s.mean + s.ci95  # type: ignore[operator]


def _wilson(x: np.ndarray, queries: int) -> tuple[float, float]:
    s = wilson_design_effect(x.tolist(), queries)
    return s.mean - s.ci95, s.mean + s.ci95  # type: ignore[operator]


def _bootstrap(rng: np.random.Generator) -> Callable[[np.ndarray, int], tuple[float, float]]:
    def interval(x: np.ndarray, queries: int) -> tuple[float, float]:
        means = x[rng.integers(0, len(x), (BOOTSTRAP_DRAWS, len(x)))].mean(1)
        low, high = np.quantile(means, [0.025, 0.975])
        return float(low), float(high)

    return interval


def coverage_table(
    scenarios: Sequence[Scenario], trials: int, seed: int, sizes: Sequence[int] = SIZES
) -> list[tuple[str, str, list[float | None]]]:
    """(scenario, interval, coverage per size): the share of `trials` simulated cells whose
    interval holds the truth (the bootstrap is left out at 1,000 episodes: None)."""
    rng = np.random.default_rng(seed)
    intervals = {"t": _t, "wilson-deff": _wilson, "bootstrap": _bootstrap(rng)}
    rows = []
    for scenario in scenarios:
        hits = {name: [0] * len(sizes) for name in intervals}
        for j, n in enumerate(sizes):
            for _ in range(trials):
                x = scenario.draw(rng, n)
                for name, interval in intervals.items():
                    if name == "bootstrap" and n >= 1000:
                        continue
                    low, high = interval(x, scenario.queries)
                    hits[name][j] += low <= scenario.truth <= high
        for name in intervals:
            rows.append((scenario.name, name, [
                None if name == "bootstrap" and n >= 1000 else hits[name][j] / trials
                for j, n in enumerate(sizes)
            ]))  # fmt: skip
    return rows
