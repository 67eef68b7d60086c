"""Episode scoring speed: the vectorised ProtoNet and batched logistic regression against the
per-episode loop and scikit-learn, on the same sampled episodes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from benchmark.core.methods import MethodContext, resolve_method
from benchmark.core.metrics import Scores
from benchmark.core.registry import TASKS
from benchmark.core.types import EncoderOptions, Episode, EpisodeSource, EpisodeSpec
from benchmark.engine.batched import score_one
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.encoders import build_encoder
from benchmark.perf.measurement import Measurement

PERF_SPEC = EpisodeSpec(5, 5, 15)  # the spec `compare_*` time by default
T = TypeVar("T")


@dataclass(frozen=True)
class Comparison:
    """Two ways to score the same sampled episodes: seconds (sampling apart, each the best of
    `repeats` runs) and accuracies."""

    episodes: int
    sampling_s: float  # the vectorised side's sampling
    vectorised_s: float
    reference_sampling_s: float
    reference_s: float
    vectorised_accuracy: float
    reference_accuracy: float
    identical: bool  # every per-episode score (and fingerprint, where compared) equal
    repeats: int

    @property
    def ours_s(self) -> float:
        return self.sampling_s + self.vectorised_s

    @property
    def theirs_s(self) -> float:
        return self.reference_sampling_s + self.reference_s

    @property
    def speedup(self) -> float:
        """Reference over vectorised time, each side's sampling included."""
        return self.theirs_s / self.ours_s

    @property
    def scoring_speedup(self) -> float:
        """Reference over vectorised time, scoring only."""
        return self.reference_s / self.vectorised_s

    @property
    def accuracy_gap_points(self) -> float:
        """|vectorised - reference| mean accuracy, in percentage points."""
        return 100 * abs(self.vectorised_accuracy - self.reference_accuracy)


def best_of(repeats: int, run: Callable[[], T]) -> tuple[T, float]:
    """The result of `run` and its fastest time in seconds over `repeats` runs (as `timeit`
    advises: slower runs measure other load on the machine, not the code)."""
    fastest = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        fastest = min(fastest, time.perf_counter() - start)
    return result, fastest


def _compare(
    source: EpisodeSource,
    spec: EpisodeSpec,
    count: int,
    seed: int,
    vectorised: Callable[[Sequence[Episode]], Scores],
    reference: Callable[[Episode], float],
    repeats: int,
) -> Comparison:
    episodes, sampling_s = best_of(repeats, lambda: source.episodes(spec, (seed,), count))
    batched, vectorised_s = best_of(repeats, lambda: vectorised(episodes))
    looped, reference_s = best_of(repeats, lambda: [reference(e) for e in episodes])
    return Comparison(
        count,
        sampling_s,
        vectorised_s,
        sampling_s,
        reference_s,
        float(np.mean(batched.metric)),
        float(np.mean(looped)),
        batched.metric == looped,
        repeats,
    )


def compare_protonet(
    source: EpisodeSource,
    context: MethodContext,
    spec: EpisodeSpec = PERF_SPEC,
    count: int = 1000,
    seed: int = 0,
    repeats: int = 3,
) -> Comparison:
    """ProtoNet on `count` episodes of a class pool: the episodes sampled as position arrays
    and scored by `score_positions`, against sampling `Episode`s and the per-episode
    `fit`/`predict` loop. Both sides' per-episode scores must be equal, and the fingerprints
    made from the arrays equal the episodes'. Encode the texts into a cached encoder first."""
    entry = resolve_method("protonet")
    method = entry.build(entry.config, context)

    def theirs() -> list[Episode]:
        return source.episodes(spec, (seed,), count)

    positions, sampling_s = best_of(repeats, lambda: source.positions(spec, (seed,), count))
    batched, vectorised_s = best_of(repeats, lambda: method.score_positions(positions))
    episodes, reference_sampling_s = best_of(repeats, theirs)
    looped, reference_s = best_of(
        repeats, lambda: Scores.join(score_one(method, e) for e in episodes)
    )
    same_episodes = positions.fingerprints() == [e.fingerprint for e in episodes]
    return Comparison(
        count,
        sampling_s,
        vectorised_s,
        reference_sampling_s,
        reference_s,
        float(np.mean(batched.metric)),
        float(np.mean(looped.metric)),
        batched == looped and same_episodes,
        repeats,
    )


def compare_logistic(
    source: EpisodeSource,
    context: MethodContext,
    spec: EpisodeSpec = PERF_SPEC,
    count: int = 1000,
    seed: int = 0,
    repeats: int = 3,
) -> Comparison:
    """The batched logistic-regression probe against scikit-learn's `LogisticRegression(C=c)`
    (multinomial, L-BFGS) fitted per episode, on `count` episodes of `source`."""
    from sklearn.linear_model import LogisticRegression  # a test extra, needed here only

    entry = resolve_method("logistic-regression")
    method = entry.build(entry.config, context)

    def reference(episode: Episode) -> float:
        support = context.embed([e.text for e in episode.support]).cpu().numpy()  # type: ignore[union-attr]
        query = context.embed([e.text for e in episode.query]).cpu().numpy()  # type: ignore[union-attr]
        model = LogisticRegression(C=entry.config.c, max_iter=1000)
        model.fit(support, [e.label for e in episode.support])  # type: ignore[union-attr]
        predicted = model.predict(query)
        return float(np.mean(predicted == [e.label for e in episode.query]))  # type: ignore[union-attr]

    return _compare(source, spec, count, seed, method.score_batch, reference, repeats)


def measure_episodes(device: str, count: int) -> list[Measurement]:
    """Vectorised ProtoNet and batched logistic regression against the per-episode ways, on
    the same 5-way 5-shot episodes of CLINC150 with cached embeddings."""

    source = TASKS.get("clinc150").load(None, 1).split("test")
    encoder = CachedEncoder(build_encoder("all-MiniLM-L6-v2", EncoderOptions(device)))
    context = MethodContext(encoder, device)
    spec = EpisodeSpec(5, 5, 15)
    episodes = source.episodes(spec, (0,), count)
    encoder.encode([e.text for episode in episodes for e in (*episode.support, *episode.query)])
    proto = compare_protonet(source, context, spec, count)
    logistic = compare_logistic(source, context, spec, count)
    return [
        Measurement(
            f"{count:,} 5w-5s ProtoNet episodes, cached embeddings, sampling included, "
            f"best of {proto.repeats}",
            "position arrays, vectorised (batched matmul)",
            "Episode objects, per-episode torch loop",
            proto.ours_s,
            proto.theirs_s,
            proto.speedup,
            ">= 4x (>= 3x on one thread), identical accuracies and fingerprints",
            proto.speedup >= (4 if torch.get_num_threads() > 1 else 3) and proto.identical,
            "every episode and fingerprint equal" if proto.identical else "episodes differ",
            proto.identical,
        ),
        Measurement(
            f"logistic-regression probe, {count:,} episodes, best of {logistic.repeats}",
            "batched bound optimisation",
            "scikit-learn per episode",
            logistic.ours_s,
            logistic.theirs_s,
            logistic.speedup,
            ">= 10x, within 0.5 points",
            logistic.speedup >= 10 and logistic.accuracy_gap_points <= 0.5,
            f"accuracy gap {logistic.accuracy_gap_points:.3f} points",
            logistic.accuracy_gap_points <= 0.5,
        ),
    ]
