"""Few-shot NER methods trained as their papers train them, on the task's source (train) split:

- ProtoBERT (Few-NERD's baseline, Ding et al. 2021): the encoder meta-trained on source episodes
  with the token-prototype loss (a prototype per BIO tag, squared Euclidean distance).
- NNShot and StructShot (Yang and Katiyar 2020): the encoder fine-tuned with supervised BIO
  tagging over every source type, the tagging head dropped, each query word tagged by its
  nearest support word (StructShot: plus Viterbi over abstract transitions counted on the
  source).
- CONTaiNER (Das et al. 2022): contrastive learning of Gaussian token embeddings on the source
  (symmetric KL distances, tokens of one tag pulled together); at test, a copy of the trained
  encoder is fine-tuned on each episode's support with the same loss (the paper's instance-level
  fine-tuning), then each query word takes its nearest support word's tag on the encoder's output.

Word vectors are the mean sub-word state of the last layer. Training reads only the train split:
the target domain's tags are never seen (no validation on the target's dev split either: the
final state is kept). After training the encoder is frozen and its word vectors cached, except
for CONTaiNER's support fine-tuning, which encodes each episode's texts with its own copy.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
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
from benchmark.core.configs import EVALUATION_ONLY, ConfigError
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

    def support_words(
        self, support: Sequence[TaggedSentence]
    ) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        """Sorted tag names, every support word's vector, and each word's tag index."""
        tags = sorted({tag for s in support for tag in s.tags})
        position = {tag: i for i, tag in enumerate(tags)}
        vectors = torch.cat(self.embed_tokens([s.tokens for s in support]))
        labels = torch.tensor([position[t] for s in support for t in s.tags], device=vectors.device)
        return tags, vectors, labels

    def nearest_words(self, support: Sequence[TaggedSentence]) -> NearestTokenKey:
        """NNShot's tagger: each query word takes its nearest support word's tag."""
        self.eval()
        with torch.no_grad():
            tags, vectors, labels = self.support_words(support)
        return NearestTokenKey(self, tags, vectors, labels, self.config.distance)  # type: ignore[arg-type]


def token_prototypes(vectors: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """(count, dim) mean vector of each tag."""
    sums = vectors.new_zeros(count, vectors.shape[1]).index_add(0, labels, vectors)
    return sums / torch.bincount(labels, minlength=count).clamp(min=1).unsqueeze(1)


class ProtoBERT(TokenLearner):
    """Few-NERD's ProtoBERT: episodes of the source, cross-entropy of each query word over
    negative squared distances to the support's tag prototypes."""

    def episode_loss(self, episode: Episode) -> torch.Tensor:
        tags, vectors, labels = self.support_words(episode.support)  # type: ignore[arg-type]
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
            tags, vectors, labels = self.support_words(support)
            prototypes = token_prototypes(vectors, labels, len(tags))
        index = torch.arange(len(tags), device=prototypes.device)
        return NearestTokenKey(self, tags, prototypes, index, self.config.distance)  # type: ignore[arg-type]


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
            tags, vectors, labels = self.support_words(support)
        start, transitions = expand_transitions(
            abstract_log_probs(self.counts, self.config.smoothing), tags
        )
        return ViterbiTagger(self, tags, vectors, labels, self.config, start, transitions)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ContainerConfig(SupervisedTaggingConfig):
    """CONTaiNER: Gaussian token embeddings N(mu, diag sigma) of `gaussian_dim` dimensions
    projected from the encoder's word vectors, trained so that tokens of one tag are close
    under the symmetric KL divergence (a contrastive loss over every token pair of a batch).
    At test, a copy of the trained encoder and projections is fine-tuned on each episode's
    support with the same loss (full batch, AdamW at `support_lr`, clipped at `max_grad_norm`)
    until the loss rises (the official code's one step of patience) or after `support_steps`
    steps; `support_steps=0` skips it and reads the cached trained vectors."""

    gaussian_dim: int = 128
    support_steps: int = field(default=30, metadata=EVALUATION_ONLY)
    support_lr: float = field(default=5e-5, metadata=EVALUATION_ONLY)

    def __post_init__(self) -> None:
        if self.support_steps < 0:
            raise ConfigError(f"option support_steps={self.support_steps}: expected >= 0 (0: off)")
        if self.support_lr <= 0:
            raise ConfigError(f"option support_lr={self.support_lr}: expected > 0")
        super().__post_init__()


def gaussian_distances(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """(n, n) symmetric KL divergences 0.5 (KL(p||q) + KL(q||p)) between diagonal Gaussians,
    without forming an (n, n, dim) tensor."""
    inverse = 1 / var
    # KL(i || j) = 0.5 (sum var_i / var_j + sum (mu_j - mu_i)^2 / var_j - d
    #                  + log det var_j - log det var_i)
    trace = var @ inverse.T
    square = (
        (mu * mu * inverse).sum(-1).unsqueeze(0) - 2 * mu @ (mu * inverse).T + (mu * mu) @ inverse.T
    )
    log_det = var.log().sum(-1)
    kl = 0.5 * (trace + square - mu.shape[1] + log_det.unsqueeze(0) - log_det.unsqueeze(1))
    return 0.5 * (kl + kl.T)


def contrastive_gaussian_loss(distances: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CONTaiNER's loss: for each token with a same-tag partner, minus the log of the mean
    exp(-d) to its partners over the sum of exp(-d) to every other token."""
    n = len(labels)
    others = ~torch.eye(n, dtype=torch.bool, device=labels.device)
    same = (labels.unsqueeze(0) == labels.unsqueeze(1)) & others
    logits = (-distances).masked_fill(~others, float("-inf"))
    log_all = logits.logsumexp(1)
    log_same = (
        logits.masked_fill(~same, float("-inf")).logsumexp(1) - same.sum(1).clamp(min=1).log()
    )
    keep = same.any(1)
    return (log_all - log_same)[keep].mean()


def gaussian_loss(
    mean: nn.Module, spread: nn.Module, vectors: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """The contrastive loss of the Gaussians N(mean(v), elu(spread(v)) + 1) of `vectors`."""
    var = nn.functional.elu(spread(vectors)) + 1 + 1e-5
    return contrastive_gaussian_loss(gaussian_distances(mean(vectors), var), labels)


class GaussianTokens(nn.Module):
    """The encoder and CONTaiNER's two projections: word vectors, and the contrastive loss of
    their Gaussian embeddings over given tag indices."""

    def __init__(self, transformer: TrainableTransformer, mean: nn.Linear, spread: nn.Linear):
        super().__init__()
        self.transformer, self.mean, self.spread = transformer, mean, spread

    def embed_tokens(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        return self.transformer.word_vectors(sentences)

    def loss(self, vectors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return gaussian_loss(self.mean, self.spread, vectors, labels)


class FrozenWords:
    """Word vectors of a module's `embed_tokens` in inference mode (a tagger's context)."""

    def __init__(self, module: GaussianTokens) -> None:
        self.module = module

    def embed_tokens(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        self.module.eval()
        with torch.no_grad():
            return self.module.embed_tokens(sentences)


def fine_tune_on_support(
    model: GaussianTokens,
    support: Sequence[TaggedSentence],
    config: ContainerConfig,
    seed: int,
) -> int:
    """CONTaiNER's instance-level fine-tuning of `model` (in place) on one support set: full
    batch steps of its loss over the support's tags until the loss rises (that step is taken,
    as in the official code) or after `config.support_steps` steps; returns the steps taken.
    Dropout draws from `seed`, so an episode fine-tunes the same way every time."""
    tags = sorted({t for s in support for t in s.tags})
    position = {tag: i for i, tag in enumerate(tags)}
    device = next(model.parameters()).device
    labels = torch.tensor([position[t] for s in support for t in s.tags], device=device)
    if len(labels) < 2 or not (labels.unsqueeze(0) == labels.unsqueeze(1)).sum() > len(labels):
        return 0  # no token has a same-tag partner: the loss is undefined
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.support_lr, weight_decay=0.0)
    previous, steps = math.inf, 0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model.train()
        while steps < config.support_steps:
            loss = model.loss(torch.cat(model.embed_tokens([s.tokens for s in support])), labels)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"CONTaiNER's support fine-tuning loss became {loss.item()} at step "
                    f"{steps + 1}: lower support_lr (now {config.support_lr})"
                )
            optimizer.zero_grad()
            loss.backward()
            if config.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            steps += 1
            if loss.item() > previous:
                break
            previous = loss.item()
    model.eval()
    return steps


class Container(NNShot):
    """CONTaiNER: contrastive Gaussian embedding training on the source; at test, support
    fine-tuning of a copy (unless `support_steps=0`), then the nearest support word on the
    encoder's output."""

    def __init__(self, config: ContainerConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.config: ContainerConfig = config
        g = config.gaussian_dim
        self.mean, self.spread = seeded_init(
            config.train_seed, lambda: (nn.Linear(self.dim, g), nn.Linear(self.dim, g))
        )
        self.mean.to(context.device)
        self.spread.to(context.device)
        self.support_steps_taken: list[int] = []

    def prepare(self, train: EpisodeSource) -> None:
        tags = bio_tags(train.labels())
        self.tags = {tag: i for i, tag in enumerate(tags)}
        TokenLearner.prepare(self, train)

    def contrastive_loss(self, episodes: Sequence[Episode]) -> torch.Tensor:
        sentences = [s for e in episodes for s in (*e.support, *e.query)]
        vectors = torch.cat(self.embed_tokens([s.tokens for s in sentences]))
        labels = torch.tensor(
            [self.tags[t] for s in sentences for t in s.tags], device=vectors.device
        )
        return gaussian_loss(self.mean, self.spread, vectors, labels)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        return self.step(episodes, self.contrastive_loss)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The encoder and the projections (support fine-tuning trains them on); no head."""
        return TokenLearner.checkpoint_state(self)

    def tuned_encoder(self, name: str, revision: str) -> Encoder | None:
        """None with support fine-tuning: each episode reads its own fine-tuned copy, so no one
        trained encoder serves the cell and none is cached."""
        return None if self.config.support_steps else super().tuned_encoder(name, revision)

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> NearestTokenKey:
        if self.config.support_steps == 0 or self.transformer is None:
            return self.nearest_words(support)
        model = copy.deepcopy(GaussianTokens(self.transformer, self.mean, self.spread))
        self.support_steps_taken.append(
            fine_tune_on_support(model, support, self.config, rng.randrange(2**63))
        )
        words = FrozenWords(model)
        tags, vectors, labels = support_words(words, support)  # type: ignore[arg-type]
        return NearestTokenKey(words, tags, vectors, labels, self.config.distance)  # type: ignore[arg-type]

    def cell_report(self) -> dict[str, object]:
        """For the record: support fine-tuning steps per episode (none: the cached vectors)."""
        if not self.support_steps_taken:
            return {}
        return {"support_fine_tuning_steps": self.support_steps_taken,
                "support_lr": self.config.support_lr}  # fmt: skip


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
    "container": MethodEntry(
        "CONTaiNER (Das et al. 2022): Gaussian token embeddings trained contrastively on the "
        "source split, a copy fine-tuned on each test support set, then the nearest support word",
        ContainerConfig(),
        Container,
        kinds=("tagging",),
        trainable=True,
    ),
}.items():
    METHODS.add(_name, _entry)
