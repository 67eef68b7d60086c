"""Episode-level scores."""

from __future__ import annotations

import random
from collections.abc import Sequence

from benchmark.core.methods import Method
from benchmark.core.tagging import entity_f1
from benchmark.core.types import Episode, Kind

METRICS: dict[Kind, str] = {"classification": "accuracy", "tagging": "entity-f1"}


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Fraction of positions where `predicted` equals `gold`."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("accuracy of an empty query set is undefined")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def score_episode(kind: Kind, method: Method, episode: Episode, rng: random.Random) -> float:
    """Fit on the support set, predict the query set, and score: accuracy or entity F1."""
    predictor = method.fit(episode.support, rng)
    if kind == "tagging":
        predicted = predictor.predict([s.tokens for s in episode.query])
        if [len(p) for p in predicted] != [len(s.tokens) for s in episode.query]:
            raise ValueError("a tagging method must return one tag per query token")
        return entity_f1([s.tags for s in episode.query], predicted)
    predicted = predictor.predict([e.text for e in episode.query])
    return accuracy(predicted, [e.label for e in episode.query])
