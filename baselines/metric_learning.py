"""Metric-based meta-learners trained end to end on training-class episodes: matching networks
(Vinyals et al. 2016), relation networks (Sung et al. 2018) and siamese networks (Koch et al.
2015) with a contrastive loss (Hadsell et al. 2006)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from baselines.frozen import similarity
from baselines.metatrained import EpisodicLearner, FeatureConfig, seeded_init
from benchmark.core.configs import ConfigError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.types import Episode, Example
from benchmark.engine.training import MetaTrainConfig

# Matching networks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchingConfig(FeatureConfig, MetaTrainConfig):
    """Matching network: softmax attention over cosine similarities to the support examples (with
    a learned scale, initially 10); `full_context` adds the paper's full-context embeddings, a
    bidirectional LSTM over the support set and an attention LSTM of `fce_steps` steps."""

    full_context: bool = False
    fce_steps: int = 2

    def validate(self) -> None:
        if self.fce_steps < 1:
            raise ConfigError(f"option fce_steps={self.fce_steps}: expected at least 1")


class FullContextEmbedding(nn.Module):
    """Vinyals et al. 2016, appendix: g(x_i, S) = fwd_i + bwd_i + g'(x_i) over the support set, and
    f(x, S) = h_K of an LSTM that reads g(S) with attention, with a skip from f'(x).

    The attention LSTM's recurrent input is [h_{k-1}, r_{k-1}]: an LSTM cell fed [f'(x), r_{k-1}]
    with hidden state h_{k-1} computes the same gates. h_0 = c_0 = 0, so r_0 is the mean of g(S).
    """

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(2 * dim, dim)
        self.steps = steps

    def support(self, embedded: torch.Tensor) -> torch.Tensor:
        """g(x_i, S) for the (n, dim) support embeddings g'(x_i), in support order."""
        out, _ = self.support_lstm(embedded.unsqueeze(0))
        forward, backward = out[0].chunk(2, dim=-1)
        return forward + backward + embedded

    def query(self, embedded: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """f(x, S) for the (q, dim) query embeddings f'(x), given g(S)."""
        h = torch.zeros_like(embedded)
        c = torch.zeros_like(embedded)
        for _ in range(self.steps):
            read = torch.softmax(h @ support.T, dim=-1) @ support
            h_hat, c = self.query_cell(torch.cat([embedded, read], dim=-1), (h, c))
            h = h_hat + embedded
        return h


class MatchingNetwork(EpisodicLearner):
    """P(y | x, S) = sum of softmax(scale * cos(f(x), g(x_i))) over support examples of class y;
    trained with the negative log-likelihood of the query labels."""

    def __init__(self, config: MatchingConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.log_scale = nn.Parameter(torch.tensor(10.0, device=context.device).log())
        self.context_embedding: FullContextEmbedding | None = None
        if config.full_context:
            self.context_embedding = seeded_init(
                config.train_seed,
                lambda: FullContextEmbedding(self.features.dim, config.fce_steps),
            ).to(context.device)
        self.optimizer = self.make_optimizer()

    def embed_support(self, support: Sequence[Example]) -> tuple[list[str], MatchingSupport]:
        """Sorted label names and the support's keys g(S) with their label indices."""
        names, labels = label_index(support)
        keys = self.features([e.text for e in support])
        if self.context_embedding is not None:
            keys = self.context_embedding.support(keys)
        return names, MatchingSupport(keys, labels.to(keys.device), len(names))

    def embed_queries(self, texts: Sequence[str], keys: torch.Tensor) -> torch.Tensor:
        embedded = self.features(texts)
        if self.context_embedding is not None:
            return self.context_embedding.query(embedded, keys)
        return embedded

    def attention_logits(self, support: MatchingSupport, texts: Sequence[str]) -> torch.Tensor:
        """(queries, support) pre-softmax attention: scale * cosine similarity."""
        queries = self.embed_queries(texts, support.keys)
        return self.log_scale.exp() * similarity(queries, support.keys, "cosine")

    def log_probabilities(self, support: MatchingSupport, texts: Sequence[str]) -> torch.Tensor:
        """(queries, classes) log of the attention mass on each class's support examples."""
        logits = self.attention_logits(support, texts)
        member = nn.functional.one_hot(support.labels, support.classes).T.bool()
        masked = logits.unsqueeze(1).masked_fill(~member, float("-inf"))
        return masked.logsumexp(-1).log_softmax(-1)

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        names, support = self.embed_support(episode.support)
        log_p = self.log_probabilities(support, [e.text for e in episode.query])
        return nn.functional.nll_loss(log_p, self.query_targets(names, episode))

    def fit(self, support: Sequence[Example], rng: random.Random) -> MatchingPredictor:
        self.eval()
        with torch.no_grad():
            names, embedded = self.embed_support(support)
        return MatchingPredictor(self, names, embedded)


@dataclass(frozen=True)
class MatchingSupport:
    """Support keys g(S), each key's label index, and the number of classes."""

    keys: torch.Tensor
    labels: torch.Tensor
    classes: int


@dataclass(frozen=True)
class MatchingPredictor:
    learner: MatchingNetwork
    names: list[str]
    support: MatchingSupport

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            best = self.learner.log_probabilities(self.support, texts).argmax(-1).cpu()
        return [self.names[i] for i in best.tolist()]


# Relation networks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RelationConfig(FeatureConfig, MetaTrainConfig):
    """Relation network: an MLP (`relation_hidden` units, ReLU, sigmoid output) scores a pair of
    a query's features q and a class feature c (the `class_feature` of the class's support
    features, a sum in the paper); trained with squared error to one-hot targets.

    `pair_input` "concat" feeds [q, c] as in the paper; over sentence embeddings that MLP
    collapses to a constant score within a few hundred episodes (measured on CLINC150), so the
    default "interactions" feeds [q, c, q * c, |q - c|], which lets it learn a relation quickly.
    """

    relation_hidden: int = 256
    class_feature: Literal["sum", "mean"] = "sum"
    pair_input: Literal["interactions", "concat"] = "interactions"

    def validate(self) -> None:
        if self.relation_hidden < 1:
            raise ConfigError(f"option relation_hidden={self.relation_hidden}: expected >= 1")


class RelationNetwork(EpisodicLearner):
    """Queries take the class with the highest relation score sigmoid(g([f(x), c_y]))."""

    def __init__(self, config: RelationConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        dim, hidden = self.features.dim, config.relation_hidden
        width = 2 * dim if config.pair_input == "concat" else 4 * dim
        self.relation = seeded_init(
            config.train_seed,
            lambda: nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1)),
        ).to(context.device)
        self.optimizer = self.make_optimizer()

    def class_features(self, support: Sequence[Example]) -> tuple[list[str], torch.Tensor]:
        """Sorted label names and one feature per class: sum (or mean) of its support features."""
        names, labels = label_index(support)
        embedded = self.features([e.text for e in support])
        index = labels.to(embedded.device)
        sums = torch.zeros(len(names), embedded.shape[1], device=embedded.device)
        sums = sums.index_add(0, index, embedded)
        if self.config.class_feature == "mean":
            sums = sums / torch.bincount(index, minlength=len(names)).unsqueeze(1)
        return names, sums

    def scores(self, classes: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """(queries, classes) relation scores in (0, 1)."""
        queries = self.features(texts)
        q = queries.unsqueeze(1).expand(-1, classes.shape[0], -1)
        c = classes.unsqueeze(0).expand(queries.shape[0], -1, -1)
        parts = [q, c] if self.config.pair_input == "concat" else [q, c, q * c, (q - c).abs()]
        return torch.sigmoid(self.relation(torch.cat(parts, dim=-1)).squeeze(-1))

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        names, classes = self.class_features(episode.support)
        scores = self.scores(classes, [e.text for e in episode.query])
        target = nn.functional.one_hot(self.query_targets(names, episode), len(names))
        return nn.functional.mse_loss(scores, target.to(scores.dtype))

    def fit(self, support: Sequence[Example], rng: random.Random) -> RelationPredictor:
        self.eval()
        with torch.no_grad():
            names, classes = self.class_features(support)
        return RelationPredictor(self, names, classes)


@dataclass(frozen=True)
class RelationPredictor:
    learner: RelationNetwork
    names: list[str]
    classes: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            best = self.learner.scores(self.classes, texts).argmax(-1).cpu()
        return [self.names[i] for i in best.tolist()]


# Siamese networks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SiameseConfig(FeatureConfig, MetaTrainConfig):
    """Siamese network: twin trainable features trained with the contrastive loss on every pair of
    a training episode's examples (same class d^2, else max(0, margin - d)^2, d Euclidean; the
    positive and negative pairs weigh half each); queries take the nearest support example's
    label."""

    margin: float = 1.0

    def validate(self) -> None:
        if self.margin <= 0:
            raise ConfigError(f"option margin={self.margin}: expected > 0")


def contrastive_loss(embedded: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean contrastive loss over all pairs i < j of `embedded`, the mean over positive (same
    label) and over negative pairs weighing half each."""
    first, second = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    squared = (embedded[first] - embedded[second]).pow(2).sum(-1)
    distance = squared.clamp_min(1e-12).sqrt()
    same = labels[first] == labels[second]
    positive = squared[same]
    negative = (margin - distance[~same]).clamp_min(0).pow(2)
    parts = [part.mean() for part in (positive, negative) if part.numel()]
    return torch.stack(parts).mean()


class SiameseNetwork(EpisodicLearner):
    """Twin features compared by Euclidean distance; a query takes its nearest support label."""

    def __init__(self, config: SiameseConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.optimizer = self.make_optimizer()

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        examples = [*episode.support, *episode.query]
        _, labels = label_index(examples)
        embedded = self.features([e.text for e in examples])
        return contrastive_loss(embedded, labels.to(embedded.device), self.config.margin)

    def fit(self, support: Sequence[Example], rng: random.Random) -> SiamesePredictor:
        self.eval()
        names, labels = label_index(support)
        with torch.no_grad():
            keys = self.features([e.text for e in support])
        return SiamesePredictor(self, names, keys, labels)


@dataclass(frozen=True)
class SiamesePredictor:
    learner: SiameseNetwork
    names: list[str]
    keys: torch.Tensor
    key_labels: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            queries = self.learner.features(texts)
            nearest = similarity(queries, self.keys, "euclidean").argmax(-1).cpu()
        return [self.names[i] for i in self.key_labels[nearest].tolist()]


METHODS.add(
    "matching-net",
    MethodEntry(
        "matching network meta-trained on the training classes: attention over cosine "
        "similarities to support examples (Vinyals et al. 2016); full_context=true adds the "
        "LSTM full-context embeddings",
        MatchingConfig(),
        MatchingNetwork,
        trainable=True,
    ),
)
METHODS.add(
    "relation-net",
    MethodEntry(
        "relation network meta-trained on the training classes: an MLP scores query/class "
        "feature pairs ([q, c, q*c, |q-c|] by default), trained with squared error to one-hot "
        "targets (Sung et al. 2018)",
        RelationConfig(),
        RelationNetwork,
        trainable=True,
    ),
)
METHODS.add(
    "siamese-net",
    MethodEntry(
        "siamese network meta-trained on pairs of training-class examples with a contrastive "
        "loss; queries take the nearest support example's label (Koch et al. 2015)",
        SiameseConfig(),
        SiameseNetwork,
        trainable=True,
    ),
)
