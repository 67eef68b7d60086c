"""Sanity floors that ignore the text: every real method must beat them."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.core.methods import METHODS, MethodContext, MethodEntry
from benchmark.core.types import Example


@dataclass(frozen=True)
class FloorConfig:
    """Floors have nothing to configure."""


@dataclass(frozen=True)
class ConstantPredictor:
    """Predicts one label for every query."""

    label: str

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.label] * len(texts)


@dataclass(frozen=True)
class UniformPredictor:
    """Predicts a label drawn uniformly from the support labels for each query."""

    names: list[str]
    rng: random.Random

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.names[int(self.rng.random() * len(self.names))] for _ in texts]


class Majority:
    """The most frequent support label; ties (all classes, when balanced) broken at random."""

    def __init__(self, config: FloorConfig, context: MethodContext) -> None:
        self.config = config

    def fit(self, support: Sequence[Example], rng: random.Random) -> ConstantPredictor:
        counts = Counter(e.label for e in support)
        top = max(counts.values())
        tied = sorted(label for label, count in counts.items() if count == top)
        return ConstantPredictor(tied[int(rng.random() * len(tied))])


class Uniform:
    """A uniformly random label per query."""

    def __init__(self, config: FloorConfig, context: MethodContext) -> None:
        self.config = config

    def fit(self, support: Sequence[Example], rng: random.Random) -> UniformPredictor:
        names = sorted({e.label for e in support})
        return UniformPredictor(names, rng)


METHODS.add(
    "majority",
    MethodEntry(
        "predicts the most frequent support label (a random one of the tied, in balanced episodes)",
        FloorConfig(),
        Majority,
        needs_encoder=False,
    ),
)
METHODS.add(
    "random",
    MethodEntry(
        "predicts a uniformly random support label per query",
        FloorConfig(),
        Uniform,
        needs_encoder=False,
    ),
)
