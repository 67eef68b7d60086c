"""Supervised pre-training, the classic baseline that meta-learning must beat ("a closer look at
few-shot classification", Chen et al. 2019; "a good embedding is all you need", Tian et al.
2020): fine-tune the encoder with cross-entropy over all training classes at once (a linear head
over the train split, not episodes), drop the head, and classify each test episode with
prototypes or the linear probe on the trained encoder's embeddings."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from baselines.frozen import PrototypicalConfig, PrototypicalNetwork
from baselines.metatrained import EpisodeLearner, FeatureConfig, seeded_init
from baselines.probe import LogisticRegression, LogisticRegressionConfig
from benchmark.core.episodes import method_rng
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, Predictor, label_index
from benchmark.core.metrics import Scores, score_episode
from benchmark.core.types import Episode, EpisodeSource, EpisodeSpec, Example
from benchmark.engine.training import MetaTrainConfig
from benchmark.engine.tuned_encoder import Layers

Classifier = Literal["prototypes", "logistic-regression"]


@dataclass(frozen=True)
class PretrainConfig(FeatureConfig, MetaTrainConfig):
    """Supervised pre-training: `meta_episodes` batches (`meta_batch` 1), each `train_k_shot` +
    `train_n_query` examples of each of `train_n_way` training classes (0: all of them), with
    cross-entropy through a linear head over every training class; the encoder trains at
    `encoder_lr` (`unfreeze_layers`: all by default), the head at `meta_lr`. Test episodes are
    classified by `classifier` on the trained embeddings. Validation (the best step is kept)
    uses prototypes on the validation classes."""

    unfreeze_layers: Layers = "all"
    adapter_hidden: int = 0
    classifier: Classifier = "prototypes"
    meta_episodes: int = 100
    meta_batch: int = 1
    train_k_shot: int = 4
    train_n_query: int = 4
    valid_every: int = 20

    def train_spec(self, evaluated: EpisodeSpec, train_classes: int) -> EpisodeSpec:
        """Batches of every training class (or `train_n_way` of them), whatever N is evaluated."""
        return EpisodeSpec(
            self.train_n_way or train_classes,
            self.train_k_shot or evaluated.k_shot,
            self.train_n_query,
            "train",
        )


class SupervisedPretraining(EpisodeLearner):
    """Cross-entropy over the training classes, then a frozen-embedding classifier."""

    def __init__(self, config: PretrainConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.config: PretrainConfig = config
        self.classes: dict[str, int] = {}
        self.head: nn.Linear | None = None

    def prepare(self, train: EpisodeSource) -> None:
        """A linear head over every class of the train split, and the optimiser."""
        self.classes = {label: i for i, label in enumerate(sorted(train.labels()))}
        self.head = seeded_init(
            self.config.train_seed, lambda: nn.Linear(self.features.dim, len(self.classes))
        ).to(self.context.device)
        self.optimizer = self.make_optimizer()

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("prepare(train split) must come before training")
        examples: list[Example] = [x for e in episodes for x in (*e.support, *e.query)]
        texts = [x.text for x in examples]
        targets = torch.tensor(
            [self.classes[x.label] for x in examples], device=self.context.device
        )
        self.optimizer.zero_grad()
        with self.embedding_once(texts, training=True):
            loss = nn.functional.cross_entropy(self.head(self.features(texts)), targets)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The trained features only: the head over the training classes is dropped."""
        return {k: v for k, v in super().checkpoint_state().items() if not k.startswith("head.")}

    def classifier(self) -> PrototypicalNetwork | LogisticRegression:
        """The frozen-embedding method that classifies test episodes on the trained encoder."""
        if self.config.classifier == "logistic-regression":
            return LogisticRegression(LogisticRegressionConfig(), self.context)
        return PrototypicalNetwork(PrototypicalConfig("euclidean"), self.context)

    def fit(self, support: Sequence[Example], rng: random.Random) -> Predictor:
        if self.features.transformer is None:
            return self.classifier().fit(support, rng)
        self.eval()  # validation during training: prototypes of the features being trained
        with torch.no_grad():
            names, labels = label_index(support)
            embedded = self.features([e.text for e in support])
            index = labels.to(embedded.device)
            sums = torch.zeros(len(names), embedded.shape[1], device=embedded.device)
            sums = sums.index_add(0, index, embedded)
            prototypes = sums / torch.bincount(index, minlength=len(names)).unsqueeze(1)
        return TrainingPrototypes(self, names, prototypes)

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Each episode's scores by the classifier's vectorised path on the trained encoder."""
        if self.features.transformer is None:
            return self.classifier().score_batch(episodes)
        return Scores.join(score_episode("classification", self, e, method_rng(e.seed, e.index))
                           for e in episodes)  # fmt: skip


@dataclass(frozen=True)
class TrainingPrototypes:
    learner: SupervisedPretraining
    names: list[str]
    prototypes: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            queries = self.learner.features(texts)
            best = torch.cdist(queries, self.prototypes).argmin(-1).cpu()
        return [self.names[i] for i in best.tolist()]


METHODS.add(
    "supervised-pretrain",
    MethodEntry(
        "supervised pre-training (Chen et al. 2019, Tian et al. 2020): the encoder fine-tuned "
        "with cross-entropy over all training classes, the head dropped, test episodes "
        "classified by prototypes (classifier=logistic-regression: the linear probe)",
        PretrainConfig(),
        SupervisedPretraining,
        trainable=True,
    ),
)
