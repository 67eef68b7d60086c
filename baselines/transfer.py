"""Transfer baselines fitted on each episode's support set: k-nearest neighbours, a linear head
trained for a fixed budget, full fine-tuning, and SetFit.

The linear probe is `logistic-regression` (baselines/probe.py); it is not registered twice.
Methods that train the transformer take a private copy of it, restore its trainable weights at
every episode (episodes never leak into each other) and use fp16 autocast with loss scaling on
CUDA.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from baselines.frozen import Distance, similarity
from baselines.probe import LinearPredictor, fit_logistic_regression
from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.metrics import Scores
from benchmark.core.types import Episode, Example
from benchmark.engine.batched import EpisodeBatch, score_batched
from benchmark.engine.features import transformer_of
from benchmark.engine.tuned_encoder import TrainableTransformer


@dataclass(frozen=True)
class KNNConfig:
    """k nearest support examples vote; `k` above the support size means the whole support."""

    k: int = 5
    distance: Distance = "cosine"


def knn_vote(scores: torch.Tensor, key_labels: torch.Tensor, k: int) -> list[int]:
    """Majority label among each row's `k` best-scoring keys.

    Neighbours are ranked by score, equal scores by key order; a tied vote goes to the tied label
    whose best neighbour ranks first.
    """
    order = torch.sort(scores.cpu(), dim=-1, descending=True, stable=True).indices[:, :k]
    out = []
    for row in key_labels.cpu()[order].tolist():
        votes: dict[int, int] = {}
        for label in row:  # dicts keep insertion order: the first-ranked label comes first
            votes[label] = votes.get(label, 0) + 1
        out.append(max(votes, key=lambda label: votes[label]))  # max keeps the first of ties
    return out


def knn_vote_batched(
    scores: torch.Tensor, key_labels: torch.Tensor, k: int, n: int
) -> torch.Tensor:
    """`knn_vote` over a batch: (b, q, keys) scores and (b, keys) labels in `range(n)` give
    (b, q) labels, with the same ranking and tie-breaking."""
    order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :k]
    ranked = key_labels.unsqueeze(1).expand_as(scores).gather(-1, order)  # (b, q, k)
    hits = nn.functional.one_hot(ranked, n).bool()  # (b, q, k, n)
    k = ranked.shape[-1]
    rank = torch.arange(k, device=scores.device).unsqueeze(1)
    first = torch.where(hits, rank, k).amin(-2)  # best rank of each label, k when absent
    return (hits.sum(-2) * (k + 1) - first).argmax(-1)  # most votes, then best-ranked


@dataclass(frozen=True)
class KNNPredictor:
    context: MethodContext
    names: list[str]
    keys: torch.Tensor
    key_labels: torch.Tensor
    config: KNNConfig

    def predict(self, texts: Sequence[str]) -> list[str]:
        scores = similarity(self.context.embed(texts), self.keys, self.config.distance)
        return [self.names[i] for i in knn_vote(scores, self.key_labels, self.config.k)]


class KNearestNeighbours:
    """k-nearest neighbours on frozen embeddings (k=1 is `nearest-neighbour`)."""

    def __init__(self, config: KNNConfig, context: MethodContext) -> None:
        if config.k < 1:
            raise BenchmarkError(f"knn needs k >= 1, got {config.k}")
        self.config = config
        self.context = context

    def fit(self, support: Sequence[Example], rng: random.Random) -> KNNPredictor:
        names, labels = label_index(support)
        keys = self.context.embed([e.text for e in support])
        return KNNPredictor(self.context, names, keys, labels, self.config)

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Scores of each episode, scored together; the same predictions as `fit`."""
        config = self.config

        def predict(batch: EpisodeBatch) -> torch.Tensor:
            scores = similarity(batch.query, batch.support, config.distance)
            return knn_vote_batched(scores, batch.support_labels, config.k, batch.n_way)

        return score_batched(episodes, self.context, predict)


@dataclass(frozen=True)
class HeadConfig:
    """A zero-initialised linear head trained with full-batch AdamW for exactly `steps` steps."""

    steps: int = 100
    lr: float = 0.01
    weight_decay: float = 0.01


def train_head(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, config: HeadConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (n_classes, dim) and bias of a linear head after `config.steps` AdamW steps."""
    head = nn.Linear(x.shape[1], n_classes).to(x.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    target = y.to(x.device)
    with torch.enable_grad():
        for _ in range(config.steps):
            optimiser.zero_grad()
            nn.functional.cross_entropy(head(x), target).backward()
            optimiser.step()
    return head.weight.detach(), head.bias.detach()


class FineTuneHead:
    """The classic "fine-tune the head" baseline: a fresh linear head on frozen embeddings."""

    def __init__(self, config: HeadConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[Example], rng: random.Random) -> LinearPredictor:
        names, labels = label_index(support)
        x = self.context.embed([e.text for e in support])
        weight, bias = train_head(x, labels, len(names), self.config)
        return LinearPredictor(self.context, names, weight, bias)


@contextlib.contextmanager
def seeded_torch(rng: random.Random) -> Iterator[None]:
    """Seed torch (dropout, initialisation) from the episode's rng, restoring the CPU and CUDA
    generators afterwards."""
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(rng.getrandbits(63))
        yield


class EpisodeEncoder:
    """A private, partly trainable copy of the transformer whose trainable weights are reset to
    the pretrained ones at the start of every episode."""

    def __init__(self, context: MethodContext, method: str, unfreeze_layers: int) -> None:
        self.model = TrainableTransformer(
            transformer_of(context, f"method {method!r}"), unfreeze_layers
        )
        self.model.to(context.device)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.initial = [p.detach().clone() for p in self.trainable]
        self.use_amp = self.model.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

    def reset(self) -> None:
        """Restore the pretrained weights, switch to training mode (dropout on) and start a new
        loss scaler."""
        with torch.no_grad():
            for parameter, value in zip(self.trainable, self.initial, strict=True):
                parameter.copy_(value)
        self.model.train()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)

    def step(self, optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One optimiser step (loss-scaled on CUDA)."""
        optimiser.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(optimiser)
        self.scaler.update()

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Embeddings from the tuned model, in evaluation mode."""
        self.model.eval()
        with torch.no_grad():
            parts = [
                self.model(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)
            ]
        return torch.cat(parts)


@dataclass(frozen=True)
class FullFineTuneConfig:
    """Fine-tune the top `unfreeze_layers` transformer layers (6: all of MiniLM's) and a
    zero-initialised linear head with AdamW for exactly `steps` mini-batch steps of `batch_size`
    support examples (`lr` for the encoder, `head_lr` for the head). The default budget is 20
    forward and backward passes over 16 texts per episode: seconds on a CPU."""

    steps: int = 20
    batch_size: int = 16
    lr: float = 5e-5
    head_lr: float = 0.01
    weight_decay: float = 0.01
    unfreeze_layers: int = 6


@dataclass(frozen=True)
class TunedPredictor:
    """Predicts argmax(f(x) W^T + b) with the episode's tuned encoder f."""

    encoder: EpisodeEncoder
    names: list[str]
    weight: torch.Tensor
    bias: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        logits = self.encoder.embed(texts) @ self.weight.T + self.bias
        return [self.names[i] for i in logits.argmax(-1).tolist()]


class FullFineTune:
    """Fine-tunes a fresh copy of the encoder with a linear head on each support set.

    The predictor uses the method's one encoder copy: predict with it before the next `fit`.
    """

    def __init__(self, config: FullFineTuneConfig, context: MethodContext) -> None:
        self.config = config
        self.encoder = EpisodeEncoder(context, "finetune-full", config.unfreeze_layers)

    def fit(self, support: Sequence[Example], rng: random.Random) -> TunedPredictor:
        names, labels = label_index(support)
        texts = [e.text for e in support]
        config = self.config
        with seeded_torch(rng):
            self.encoder.reset()
            device = self.encoder.model.device
            head = nn.Linear(self.encoder.model.model.config.hidden_size, len(names)).to(device)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            optimiser = torch.optim.AdamW(
                [
                    {"params": self.encoder.trainable, "lr": config.lr},
                    {"params": head.parameters(), "lr": config.head_lr},
                ],
                weight_decay=config.weight_decay,
            )
            with torch.enable_grad():
                for _ in range(config.steps):
                    batch = rng.sample(range(len(texts)), min(config.batch_size, len(texts)))
                    features = self.encoder.model([texts[i] for i in batch])
                    target = labels[batch].to(device)
                    loss = nn.functional.cross_entropy(head(features), target)
                    self.encoder.step(optimiser, loss)
        return TunedPredictor(self.encoder, names, head.weight.detach(), head.bias.detach())


@dataclass(frozen=True)
class SetFitConfig:
    """SetFit (Tunstall et al. 2022): `pair_iterations` rounds of one positive (same label) and
    one negative pair per support example; `epochs` passes over the pairs in batches of
    `batch_size` pairs, loss (cos(u, v) - target)^2 with targets 1/0, AdamW at `lr` on the top
    `unfreeze_layers` layers; then logistic regression (C=`c`) on the tuned embeddings. The default
    budget, 5-way 5-shot: 250 pairs, 16 passes over 32 texts per episode."""

    pair_iterations: int = 5
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    unfreeze_layers: int = 6
    c: float = 1.0


def contrastive_pairs(
    labels: Sequence[int], iterations: int, rng: random.Random
) -> list[tuple[int, int, float]]:
    """SetFit's pairs: per iteration and example, a same-label partner (target 1, the example
    itself when it is its label's only one) and a different-label partner (target 0)."""
    members: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    pairs = []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            pairs.append((i, rng.choice(members[label]), 1.0))
            others = [j for j, other in enumerate(labels) if other != label]
            if others:
                pairs.append((i, rng.choice(others), 0.0))
    return pairs


class SetFit:
    """Contrastive fine-tuning of a fresh copy of the sentence encoder, then a logistic head.

    The predictor uses the method's one encoder copy: predict with it before the next `fit`.
    """

    def __init__(self, config: SetFitConfig, context: MethodContext) -> None:
        self.config = config
        self.encoder = EpisodeEncoder(context, "setfit", config.unfreeze_layers)

    def fit(self, support: Sequence[Example], rng: random.Random) -> TunedPredictor:
        names, labels = label_index(support)
        texts = [e.text for e in support]
        config = self.config
        pairs = contrastive_pairs(labels.tolist(), config.pair_iterations, rng)
        with seeded_torch(rng):
            self.encoder.reset()
            optimiser = torch.optim.AdamW(self.encoder.trainable, lr=config.lr)
            with torch.enable_grad():
                for _ in range(config.epochs):
                    rng.shuffle(pairs)
                    for start in range(0, len(pairs), config.batch_size):
                        batch = pairs[start : start + config.batch_size]
                        features = self.encoder.model(
                            [texts[a] for a, _, _ in batch] + [texts[b] for _, b, _ in batch]
                        )
                        left, right = features.split(len(batch))
                        cosine = nn.functional.cosine_similarity(left, right)
                        target = torch.tensor([t for _, _, t in batch], device=cosine.device)
                        loss = nn.functional.mse_loss(cosine, target)
                        self.encoder.step(optimiser, loss)
        x = self.encoder.embed(texts)
        weight, bias = fit_logistic_regression(x, labels, len(names), config.c, max_iter=100)
        return TunedPredictor(self.encoder, names, weight, bias)


METHODS.add(
    "knn",
    MethodEntry(
        "k-nearest neighbours (k=5, cosine) on frozen embeddings, majority vote",
        KNNConfig(),
        KNearestNeighbours,
    ),
)
METHODS.add(
    "finetune-head",
    MethodEntry(
        "linear head trained on frozen embeddings for a fixed budget (100 full-batch AdamW steps)",
        HeadConfig(),
        FineTuneHead,
    ),
)
METHODS.add(
    "finetune-full",
    MethodEntry(
        "per-episode fine-tuning of a fresh encoder copy and a linear head (20 AdamW steps of 16)",
        FullFineTuneConfig(),
        FullFineTune,
    ),
)
METHODS.add(
    "setfit",
    MethodEntry(
        "SetFit: contrastive pair fine-tuning of a fresh encoder copy, then logistic regression",
        SetFitConfig(),
        SetFit,
    ),
)
