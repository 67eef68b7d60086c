"""Plug-in methods for runner tests (`--method cell_plugins:Sleepy`): cheap and deterministic,
importable by worker processes (the tests put this folder on PYTHONPATH for subprocesses)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark.core.types import Example

SLEEP_ENV = "FEWSHOT_TEST_SLEEP_S"  # seconds each fit sleeps (default 0)
FAIL_ENV = "FEWSHOT_TEST_FAIL_LABELS"  # comma-separated labels whose support sets raise


@dataclass(frozen=True)
class Constant:
    """Predicts one label for every query."""

    label: str

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.label] * len(texts)


class Sleepy:
    """Guesses one support label per episode (from the method rng), after sleeping
    $FEWSHOT_TEST_SLEEP_S seconds; reads no embeddings."""

    needs_encoder = False

    def __init__(self, config: object, context: object) -> None:
        self.sleep_s = float(os.environ.get(SLEEP_ENV, "0"))

    def fit(self, support: Sequence[Example], rng: random.Random) -> Constant:
        time.sleep(self.sleep_s)
        return Constant(rng.choice(sorted({e.label for e in support})))


class FailsOnLabels(Sleepy):
    """Like Sleepy, but raises when the support set holds a label listed in
    $FEWSHOT_TEST_FAIL_LABELS (so that it fails on one task only)."""

    def fit(self, support: Sequence[Example], rng: random.Random) -> Constant:
        doomed = set(filter(None, os.environ.get(FAIL_ENV, "").split(",")))
        hit = sorted(doomed & {e.label for e in support})
        if hit:
            raise RuntimeError(f"planted failure on label {hit[0]}")
        return super().fit(support, rng)


class CrashesWorkers(Sleepy):
    """Kills the worker process it runs in (never the test's own process, $FEWSHOT_TEST_PID)."""

    def fit(self, support: Sequence[Example], rng: random.Random) -> Constant:
        if os.getpid() != int(os.environ["FEWSHOT_TEST_PID"]):
            os._exit(3)
        return super().fit(support, rng)
