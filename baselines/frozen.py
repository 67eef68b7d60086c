"""Metric-based methods on frozen encoder embeddings: prototypical network and nearest neighbour."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from benchmark.core.episodes import PositionBatch
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.metrics import Scores
from benchmark.core.types import Episode, Example
from benchmark.engine.batched import EpisodeBatch, score_batched, score_positions

Distance = Literal["euclidean", "cosine"]


def similarity(queries: torch.Tensor, keys: torch.Tensor, distance: Distance) -> torch.Tensor:
    """(..., q, k) scores, higher is closer: negative squared Euclidean distance or cosine.

    Squared distances are expanded as |q|^2 - 2 q.k + |k|^2, one matmul and no `cdist`. Leading
    dimensions are a batch of episodes (`(b, q, d)` against `(b, k, d)` is one batched matmul).
    """
    if distance == "cosine":
        queries = torch.nn.functional.normalize(queries, dim=-1)
        keys = torch.nn.functional.normalize(keys, dim=-1)
        return queries @ keys.mT
    squared = (queries * queries).sum(-1, keepdim=True) - 2 * queries @ keys.mT
    return -(squared + (keys * keys).sum(-1).unsqueeze(-2))


@dataclass(frozen=True)
class PrototypicalConfig:
    """Snell et al. 2017: classify by the nearest class mean (prototype) of the support set."""

    distance: Distance = "euclidean"


@dataclass(frozen=True)
class NearestKey:
    """Predicts the label of the key closest to each query.

    Keys are prototypes (one per label, `key_labels` None) or support examples (`key_labels`
    gives each key's label index).
    """

    context: MethodContext
    names: list[str]
    keys: torch.Tensor
    distance: Distance
    key_labels: torch.Tensor | None = None

    def predict(self, texts: Sequence[str]) -> list[str]:
        best = similarity(self.context.embed(texts), self.keys, self.distance).argmax(-1).cpu()
        if self.key_labels is not None:
            best = self.key_labels[best]
        return [self.names[i] for i in best.tolist()]


class PrototypicalNetwork:
    """Prototypical network over a frozen encoder: prototypes are support means."""

    def __init__(self, config: PrototypicalConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[Example], rng: random.Random) -> NearestKey:
        names, labels = label_index(support)
        embedded = self.context.embed([e.text for e in support])
        index = labels.to(embedded.device)
        prototypes = torch.zeros(len(names), embedded.shape[1], device=embedded.device)
        prototypes.index_add_(0, index, embedded)
        prototypes /= torch.bincount(index, minlength=len(names)).unsqueeze(1)
        return NearestKey(self.context, names, prototypes, self.config.distance)

    def predict_batch(self, batch: EpisodeBatch) -> torch.Tensor:
        """(b, q) label indices of the nearest prototype, as `fit` predicts."""
        return similarity(batch.query, prototypes(batch), self.config.distance).argmax(-1)

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Scores of each episode, scored together; the same predictions as `fit`."""
        return score_batched(episodes, self.context, self.predict_batch)

    def score_positions(self, batch: PositionBatch) -> Scores:
        """`score_batch` of sampled episodes given as position arrays."""
        return score_positions(batch, self.context, self.predict_batch)


def prototypes(batch: EpisodeBatch) -> torch.Tensor:
    """(b, n_way, dim) support means, summed in support order as `PrototypicalNetwork.fit` does."""
    (b, s, dim), n = batch.support.shape, batch.n_way
    offsets = n * torch.arange(b, device=batch.support.device).unsqueeze(1)
    index = (batch.support_labels + offsets).ravel()
    sums = batch.support.new_zeros(b * n, dim)
    sums.index_add_(0, index, batch.support.reshape(b * s, dim))
    sums /= torch.bincount(index, minlength=b * n).unsqueeze(1)
    return sums.reshape(b, n, dim)


@dataclass(frozen=True)
class NearestNeighbourConfig:
    """1-nearest neighbour among support embeddings."""

    distance: Distance = "cosine"


class NearestNeighbour:
    """Labels each query with the label of its nearest support example."""

    def __init__(self, config: NearestNeighbourConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[Example], rng: random.Random) -> NearestKey:
        names, labels = label_index(support)
        keys = self.context.embed([e.text for e in support])
        return NearestKey(self.context, names, keys, self.config.distance, key_labels=labels)

    def predict_batch(self, batch: EpisodeBatch) -> torch.Tensor:
        """(b, q) label indices of the nearest support example, as `fit` predicts."""
        best = similarity(batch.query, batch.support, self.config.distance).argmax(-1)
        return batch.support_labels.gather(1, best)

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Scores of each episode, scored together; the same predictions as `fit`."""
        return score_batched(episodes, self.context, self.predict_batch)

    def score_positions(self, batch: PositionBatch) -> Scores:
        """`score_batch` of sampled episodes given as position arrays."""
        return score_positions(batch, self.context, self.predict_batch)


METHODS.add(
    "protonet",
    MethodEntry(
        "prototypical network, frozen encoder, squared Euclidean distance (Snell et al. 2017)",
        PrototypicalConfig("euclidean"),
        PrototypicalNetwork,
    ),
)
METHODS.add(
    "protonet-cosine",
    MethodEntry(
        "prototypical network, frozen encoder, cosine similarity",
        PrototypicalConfig("cosine"),
        PrototypicalNetwork,
    ),
)
METHODS.add(
    "nearest-neighbour",
    MethodEntry(
        "1-nearest neighbour among support embeddings, cosine similarity",
        NearestNeighbourConfig("cosine"),
        NearestNeighbour,
    ),
)
