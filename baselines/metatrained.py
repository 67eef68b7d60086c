"""Metric-based meta-learning trained end to end on the training classes: the prototypical
network (Snell et al. 2017) with trainable features."""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from baselines.frozen import Distance, similarity
from baselines.frozen import prototypes as batch_prototypes
from benchmark.core.episodes import method_rng
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.metrics import Scores, score_episode
from benchmark.core.types import Encoder, Episode, Example
from benchmark.engine.batched import EpisodeBatch, score_batched
from benchmark.engine.features import TextFeatures
from benchmark.engine.outer_optimizer import EncoderTraining, OuterOptimizer
from benchmark.engine.training import MetaTrainConfig
from benchmark.engine.tuned_encoder import Layers


@dataclass(frozen=True)
class FeatureConfig(EncoderTraining):
    """Which features train: a residual adapter of `adapter_hidden` units over frozen embeddings
    (`unfreeze_layers` 0, fast: embeddings are cached), and/or the encoder's top
    `unfreeze_layers` layers (`all`: all of it) at `encoder_lr`, with warm-up and clipping."""

    unfreeze_layers: Layers = 0
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
    """Shared mechanics of metric learners: features, an optimiser, a checkpointable state, and
    after training the trained encoder for evaluation."""

    def __init__(self, config: Any, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.context = context
        self.features = seeded_init(
            config.train_seed,
            lambda: TextFeatures(
                context,
                config.unfreeze_layers,
                config.adapter_hidden,
                config.gradient_checkpointing,
            ),
        )

    def make_optimizer(self) -> OuterOptimizer:
        """Adam: the encoder's unfrozen weights at `encoder_lr`, the rest at `meta_lr`."""
        transformer = self.features.transformer
        encoder = [] if transformer is None else list(transformer.parameters())
        tuned = {id(p) for p in encoder}
        own = [p for p in self.parameters() if p.requires_grad and id(p) not in tuned]
        encoder = [p for p in encoder if p.requires_grad]
        return OuterOptimizer(own, encoder, self.config.meta_lr, self.config, self.config.steps)

    @contextlib.contextmanager
    def embedding_once(self, texts: Sequence[str], training: bool) -> Iterator[None]:
        """Inside: `texts` go through the encoder once (`TextFeatures.embedded_once`), in
        training mode with gradients, or in evaluation mode without (validation)."""
        self.train(training)
        with torch.set_grad_enabled(training), self.features.embedded_once(texts):
            yield

    def tuned_encoder(self, name: str, revision: str) -> Encoder | None:
        """The trained encoder as a frozen one, for evaluation (None: only the adapter trained)."""
        return self.features.tuned_encoder(name, revision)

    def evaluate_with(self, encoder: Encoder) -> None:
        """Read `encoder`'s (cached) embeddings from now on instead of running the transformer."""
        self.context = dataclasses.replace(self.context, encoder=encoder)
        self.features.freeze(self.context)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self)

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.checkpoint_state()) - set(state)
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
        texts = [x.text for e in episodes for x in (*e.support, *e.query)]
        with self.embedding_once(texts, training=True):  # one encoder pass for the meta batch
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

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Scores of each episode, scored together over (cached) embeddings; the same
        predictions as `fit`. With the transformer still attached, episode by episode."""
        if self.features.transformer is not None:
            return Scores.join(score_episode("classification", self, e, method_rng(e.seed, e.index))
                               for e in episodes)  # fmt: skip
        self.eval()
        adapter, distance = self.features.adapter, self.config.distance

        def predict(batch: EpisodeBatch) -> torch.Tensor:
            support = dataclasses.replace(batch, support=adapter(batch.support))
            return similarity(adapter(batch.query), batch_prototypes(support), distance).argmax(-1)

        with torch.no_grad():
            return score_batched(episodes, self.context, predict)


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
