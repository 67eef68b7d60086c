"""Test helpers importable from every test module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


class TableEncoder:
    """A fake encoder that looks texts up in a fixed table (for exact method tests)."""

    name = "table"
    revision = "test"

    def __init__(self, table: dict[str, Sequence[float]]) -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) for k, v in table.items()}
        self.dim = len(next(iter(self.table.values())))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts])


@dataclass(frozen=True)
class NoConfig:
    """Nothing to configure."""


class Exploding:
    """A method whose every `fit` raises (to test that a failing cell is kept and reported)."""

    MESSAGE = "kaboom from a test method"

    def __init__(self, config: NoConfig, context: object) -> None:
        pass

    def fit(self, support: object, rng: object) -> None:
        raise RuntimeError(self.MESSAGE)


def class_means(context, support: Sequence) -> tuple[list[str], torch.Tensor]:
    """The sorted label names of `support` and each label's mean embedding (test plug-ins)."""
    names = sorted({e.label for e in support})
    x = context.embed([e.text for e in support])
    labels = torch.tensor([names.index(e.label) for e in support])
    return names, torch.stack([x[labels == i].mean(0) for i in range(len(names))])


def expected_summary(record: dict):
    """The mean and CI a record's per-episode scores give under the interval it names
    (wilson-deff: over n_way x n_query queries an episode)."""
    from benchmark.core.stats import interval_summary

    queries = record["n_way"] * record["n_query"] if record["interval"] == "wilson-deff" else None
    summary, interval = interval_summary(record["per_episode"], queries)
    assert interval == record["interval"]
    return summary
