"""Metric-based meta-learning trained end to end on the training classes: the prototypical
network (Snell et al. 2017) with trainable features."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.frozen import Distance, similarity
from benchmark.core.configs import ConfigError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.types import Episode, Example
from benchmark.engine.features import TextFeatures
from benchmark.engine.training import MetaTrainConfig


@dataclass(frozen=True)
class FeatureConfig:
    """Which features train: a residual adapter of `adapter_hidden` units over frozen embeddings
    (`unfreeze_layers` 0, fast: embeddings are cached), and/or the top encoder layers."""

    unfreeze_layers: int = 0
    adapter_hidden: int = 256


def seeded_init(seed: int, build: Any) -> Any:
    """`build()` with torch's global generator seeded, leaving the caller's generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's trainable parameters (frozen encoder weights are not saved)."""
    return {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}


class EpisodeLearner(nn.Module):
    """Shared mechanics of metric learners: features, an optimiser, a checkpointable state."""

    def __init__(self, config: Any, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.context = context
        self.features = seeded_init(
            config.train_seed,
            lambda: TextFeatures(context, config.unfreeze_layers, config.adapter_hidden),
        )

    def make_optimizer(self) -> torch.optim.Optimizer:
        trainable = [p for p in self.parameters() if p.requires_grad]
        if not trainable:
            raise ConfigError(
                "nothing to meta-train: with adapter_hidden=0 and unfreeze_layers=0 the method "
                "has no meta-learned parameters; set one of them"
            )
        return torch.optim.Adam(trainable, lr=self.config.meta_lr)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self)

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(trainable_state(self)) - set(state)
        if missing:
            raise ValueError(f"the checkpoint lacks parameters {sorted(missing)[:5]}")
        self.load_state_dict(state, strict=False)


class EpisodicLearner(EpisodeLearner):
    """An `EpisodeLearner` whose outer update is Adam on the mean of `episode_loss` over a batch."""

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        self.train()
        self.optimizer.zero_grad()
        loss = torch.stack([self.episode_loss(e) for e in episodes]).mean()
        loss.backward()
        self.optimizer.step()
        return loss.detach()  # read by `meta_train` after it samples the next batch

    def query_targets(self, names: list[str], episode: Episode) -> torch.Tensor:
        """Each query's index into the sorted label `names`, on the context's device."""
        position = {name: i for i, name in enumerate(names)}
        return torch.tensor([position[e.label] for e in episode.query], device=self.context.device)


@dataclass(frozen=True)
class MetaPrototypicalConfig(FeatureConfig, MetaTrainConfig):
    """Prototypical network meta-trained on training-class episodes (cross-entropy over negative
    distances to the prototypes, with a learned scale)."""

    distance: Distance = "euclidean"


class MetaPrototypicalNetwork(EpisodicLearner):
    """Prototypes are support means of trainable features; queries take the nearest one."""

    def __init__(self, config: MetaPrototypicalConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        start = 10.0 if config.distance == "cosine" else 1.0
        self.log_scale = nn.Parameter(torch.tensor(start, device=context.device).log())
        self.optimizer = self.make_optimizer()

    def prototypes(self, support: Sequence[Example]) -> tuple[list[str], torch.Tensor]:
        names, labels = label_index(support)
        embedded = self.features([e.text for e in support])
        index = labels.to(embedded.device)
        sums = torch.zeros(len(names), embedded.shape[1], device=embedded.device)
        sums = sums.index_add(0, index, embedded)
        counts = torch.bincount(index, minlength=len(names)).unsqueeze(1)
        return names, sums / counts

    def logits(self, prototypes: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        scores = similarity(self.features(texts), prototypes, self.config.distance)
        return self.log_scale.exp() * scores

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        names, prototypes = self.prototypes(episode.support)
        logits = self.logits(prototypes, [e.text for e in episode.query])
        return nn.functional.cross_entropy(logits, self.query_targets(names, episode))

    def fit(self, support: Sequence[Example], rng: random.Random) -> PrototypePredictor:
        self.eval()
        with torch.no_grad():
            names, prototypes = self.prototypes(support)
        return PrototypePredictor(self, names, prototypes)


@dataclass(frozen=True)
class PrototypePredictor:
    learner: MetaPrototypicalNetwork
    names: list[str]
    prototypes: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            best = self.learner.logits(self.prototypes, texts).argmax(-1).cpu()
        return [self.names[i] for i in best.tolist()]


METHODS.add(
    "protonet-meta",
    MethodEntry(
        "prototypical network meta-trained on the training classes: residual adapter over the "
        "frozen encoder (unfreeze_layers > 0 also trains the top encoder layers)",
        MetaPrototypicalConfig(),
        MetaPrototypicalNetwork,
        trainable=True,
    ),
)
