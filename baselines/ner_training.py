"""Few-shot NER methods trained as their papers train them, on the task's source (train) split:

- ProtoBERT (Few-NERD's baseline, Ding et al. 2021): the encoder meta-trained on source episodes
  with the token-prototype loss (a prototype per BIO tag, squared Euclidean distance).
- NNShot and StructShot (Yang and Katiyar 2020): the encoder fine-tuned with supervised BIO
  tagging over every source type, the tagging head dropped, each query word tagged by its
  nearest support word (StructShot: plus Viterbi over abstract transitions counted on the
  source).

CONTaiNER, trained with this module's loop, is in `baselines.container`. Word vectors are the
mean sub-word state of the last layer. Training reads only the train split: the target domain's
tags are never seen (no validation on the target's dev split either: the final state is kept).
After training the encoder is frozen and its word vectors cached.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from baselines.frozen import Distance, similarity
from baselines.metatrained import seeded_init, trainable_state
from baselines.ner import (
    NearestTokenKey,
    ViterbiTagger,
    abstract_log_probs,
    count_transitions,
    expand_transitions,
    support_words,
)
from benchmark.core.configs import EVALUATION_ONLY
from benchmark.core.methods import METHODS, MethodContext, MethodEntry
from benchmark.core.types import Encoder, Episode, EpisodeSource, EpisodeSpec, TaggedSentence
from benchmark.engine.features import transformer_of
from benchmark.engine.outer_optimizer import EncoderTraining, OuterOptimizer
from benchmark.engine.training import MetaTrainConfig
from benchmark.engine.tuned_encoder import Layers, TrainableTransformer, TunedEncoder


@dataclass(frozen=True)
class TokenTrainingConfig(EncoderTraining, MetaTrainConfig):
    """Encoder training on the source split: `meta_episodes` episodes of `train_n_way` source
    types (0: as many as evaluated, at most the source's) with K = `train_k_shot` and Q =
    `train_n_query` mentions per type, `meta_batch` per step; every encoder layer trains
    (`unfreeze_layers`) at `encoder_lr`, the method's own parameters at `meta_lr`. No validation:
    the source split has no few-shot dev split of its own, and the target's is not read."""

    # 600 steps at 1e-4: the budget of the README's CrossNER tables (about 200 s on 2 CPU cores);
    # 2.5x the steps changed nothing there, fewer steps at 5e-5 left NNShot below its frozen form
    unfreeze_layers: Layers = "all"
    encoder_lr: float = 1e-4
    distance: Distance = "euclidean"
    meta_episodes: int = 600
    meta_batch: int = 1
    train_k_shot: int = 2
    train_n_query: int = 2
    valid_every: int = 0


@dataclass(frozen=True)
class SupervisedTaggingConfig(TokenTrainingConfig):
    """Supervised BIO tagging over every source type (`train_n_way` 0: all of them): each
    source episode is a batch of tagged sentences."""

    def train_spec(self, evaluated: EpisodeSpec, train_classes: int) -> EpisodeSpec:
        return EpisodeSpec(self.train_n_way or train_classes, self.train_k_shot,
                           self.train_n_query, "train")  # fmt: skip


class TokenLearner(nn.Module):
    """A trainable copy of the encoder giving word vectors, its optimiser, a checkpointable
    state, and after training the frozen trained encoder for evaluation."""

    def __init__(self, config: TokenTrainingConfig, context: MethodContext) -> None:
        super().__init__()
        self.config = config
        self.context = context
        self.transformer: TrainableTransformer | None = TrainableTransformer(
            transformer_of(context, f"unfreeze_layers={config.unfreeze_layers}"),
            config.unfreeze_layers,
            config.gradient_checkpointing,
        ).to(context.device)
        self.dim = self.transformer.dim
        self._table: dict[tuple[str, ...], torch.Tensor] | None = None
        self.optimizer: OuterOptimizer | None = None

    def make_optimizer(self) -> OuterOptimizer:
        encoder = [] if self.transformer is None else list(self.transformer.parameters())
        tuned = {id(p) for p in encoder}
        own = [p for p in self.parameters() if p.requires_grad and id(p) not in tuned]
        encoder = [p for p in encoder if p.requires_grad]
        return OuterOptimizer(own, encoder, self.config.meta_lr, self.config, self.config.steps)

    def prepare(self, train: EpisodeSource) -> None:
        """Called once before training: the optimiser (heads are sized by subclasses first)."""
        self.optimizer = self.make_optimizer()

    def embed_tokens(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Word vectors of each sentence: from the one pass of `embedding_once`, the trainable
        encoder, or (after `evaluate_with`) the frozen trained encoder's cache."""
        keys = [tuple(s) for s in sentences]
        if self._table is not None and all(k in self._table for k in keys):
            return [self._table[k] for k in keys]
        if self.transformer is not None:
            return self.transformer.word_vectors(sentences)
        return self.context.embed_tokens(sentences)

    @contextlib.contextmanager
    def embedding_once(self, sentences: Sequence[Sequence[str]], training: bool) -> Iterator[None]:
        """Inside: the word vectors of `sentences` come from one encoder pass."""
        self.train(training)
        unique = list(dict.fromkeys(tuple(s) for s in sentences))
        with torch.set_grad_enabled(training):
            self._table = None
            self._table = dict(zip(unique, self.embed_tokens(unique), strict=True))
            try:
                yield
            finally:
                self._table = None

    def step(
        self, episodes: Sequence[Episode], loss_of: Callable[[Sequence[Episode]], torch.Tensor]
    ) -> torch.Tensor:
        """One optimiser step on `loss_of(episodes)`, the batch's sentences encoded once."""
        assert self.optimizer is not None, "prepare() comes before training"
        sentences = [s.tokens for e in episodes for s in (*e.support, *e.query)]
        self.optimizer.zero_grad()
        with self.embedding_once(sentences, training=True):
            loss = loss_of(episodes)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return trainable_state(self)

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.checkpoint_state()) - set(state)
        if missing:
            raise ValueError(f"the checkpoint lacks parameters {sorted(missing)[:5]}")
        self.load_state_dict({k: v for k, v in state.items() if isinstance(v, torch.Tensor)},
                             strict=False)  # fmt: skip

    def tuned_encoder(self, name: str, revision: str) -> Encoder | None:
        return None if self.transformer is None else TunedEncoder(self.transformer, name, revision)

    def evaluate_with(self, encoder: Encoder) -> None:
        """Read `encoder`'s cached word vectors from now on; the transformer is dropped."""
        self.context = dataclasses.replace(self.context, encoder=encoder)
        self.transformer = None

    def nearest_words(self, support: Sequence[TaggedSentence]) -> NearestTokenKey:
        """NNShot's tagger: each query word takes its nearest support word's tag."""
        self.eval()
        with torch.no_grad():
            tags, vectors, labels = support_words(self, support)
        return NearestTokenKey(self, tags, vectors, labels, self.config.distance)


def token_prototypes(vectors: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """(count, dim) mean vector of each tag."""
    sums = vectors.new_zeros(count, vectors.shape[1]).index_add(0, labels, vectors)
    return sums / torch.bincount(labels, minlength=count).clamp(min=1).unsqueeze(1)


class ProtoBERT(TokenLearner):
    """Few-NERD's ProtoBERT: episodes of the source, cross-entropy of each query word over
    negative squared distances to the support's tag prototypes."""

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        tags, vectors, labels = support_words(self, episode.support)  # type: ignore[arg-type]
        prototypes = token_prototypes(vectors, labels, len(tags))
        position = {tag: i for i, tag in enumerate(tags)}
        queries = torch.cat(self.embed_tokens([s.tokens for s in episode.query]))
        targets = torch.tensor(
            [position.get(t, -100) for s in episode.query for t in s.tags], device=queries.device
        )  # a query tag the support lacks (an I- never seen) is left out
        logits = similarity(queries, prototypes, self.config.distance)
        return nn.functional.cross_entropy(logits, targets, ignore_index=-100)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        return self.step(episodes, lambda b: torch.stack([self.episode_loss(e) for e in b]).mean())

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> NearestTokenKey:
        self.eval()
        with torch.no_grad():
            tags, vectors, labels = support_words(self, support)
            prototypes = token_prototypes(vectors, labels, len(tags))
        index = torch.arange(len(tags), device=prototypes.device)
        return NearestTokenKey(self, tags, prototypes, index, self.config.distance)


def bio_tags(types: Sequence[str]) -> list[str]:
    """`O` and the B- and I- tag of every type."""
    return ["O", *(f"{prefix}-{kind}" for kind in sorted(types) for prefix in "BI")]


class NNShot(TokenLearner):
    """NNShot: supervised BIO tagging on the source (a linear head over its tags, dropped
    afterwards), then the nearest support word's tag."""

    def prepare(self, train: EpisodeSource) -> None:
        tags = bio_tags(train.labels())
        self.tags = {tag: i for i, tag in enumerate(tags)}
        self.head = seeded_init(self.config.train_seed, lambda: nn.Linear(self.dim, len(tags)))
        self.head.to(self.context.device)
        super().prepare(train)

    def tagging_loss(self, episodes: Sequence[Episode]) -> torch.Tensor:
        sentences = [s for e in episodes for s in (*e.support, *e.query)]
        vectors = torch.cat(self.embed_tokens([s.tokens for s in sentences]))
        targets = torch.tensor(
            [self.tags[t] for s in sentences for t in s.tags], device=vectors.device
        )
        return nn.functional.cross_entropy(self.head(vectors), targets)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        return self.step(episodes, self.tagging_loss)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The encoder only: the tagging head is dropped after training."""
        return {k: v for k, v in super().checkpoint_state().items() if not k.startswith("head.")}

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> NearestTokenKey:
        return self.nearest_words(support)


@dataclass(frozen=True)
class TrainedStructShotConfig(SupervisedTaggingConfig):
    """StructShot: NNShot's training and emissions, `emission_scale` x the best similarity per
    tag (log-softmax), paths scored with `transition_weight` x log abstract transition
    probabilities counted (add-`smoothing`) on the same source episodes."""

    emission_scale: float = field(default=0.5, metadata=EVALUATION_ONLY)
    transition_weight: float = field(default=1.0, metadata=EVALUATION_ONLY)
    smoothing: float = field(default=1.0, metadata=EVALUATION_ONLY)


class StructShot(NNShot):
    """NNShot trained as above, decoded by Viterbi over transitions counted on the source."""

    def __init__(self, config: TrainedStructShotConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.config: TrainedStructShotConfig = config
        self.register_buffer("counts", torch.zeros(8, dtype=torch.float64))

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        self.counts += count_transitions([s for e in episodes for s in (*e.support, *e.query)])
        return super().train_step(episodes, rng)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return {**super().checkpoint_state(), "counts": self.counts.clone()}

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> ViterbiTagger:
        self.eval()
        with torch.no_grad():
            tags, vectors, labels = support_words(self, support)
        start, transitions = expand_transitions(
            abstract_log_probs(self.counts, self.config.smoothing), tags
        )
        return ViterbiTagger(self, tags, vectors, labels, self.config, start, transitions)


for _name, _entry in {
    "ner-protonet": MethodEntry(
        "ProtoBERT (Ding et al. 2021): the encoder meta-trained on source-split episodes with "
        "the token-prototype loss, then token prototypes per BIO tag",
        TokenTrainingConfig(),
        ProtoBERT,
        kinds=("tagging",),
        trainable=True,
    ),
    "nnshot": MethodEntry(
        "NNShot (Yang and Katiyar 2020): the encoder fine-tuned with supervised BIO tagging on "
        "the source split, the head dropped, then the nearest support word's tag",
        SupervisedTaggingConfig(),
        NNShot,
        kinds=("tagging",),
        trainable=True,
    ),
    "structshot": MethodEntry(
        "StructShot (Yang and Katiyar 2020): NNShot's training and emissions, Viterbi over "
        "abstract BIO transitions counted on the source split",
        TrainedStructShotConfig(),
        StructShot,
        kinds=("tagging",),
        trainable=True,
    ),
}.items():
    METHODS.add(_name, _entry)
