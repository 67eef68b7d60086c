"""CONTaiNER (Das et al., ACL 2022): contrastive learning of Gaussian token embeddings on the
source split (symmetric KL distances, tokens of one tag pulled together), trained with NNShot's
loop and source reading (`baselines.ner_training`). At test, a copy of the trained encoder and
projections is fine-tuned on each episode's support with the same loss (the paper's
instance-level fine-tuning), then each query word takes its nearest support word's tag on the
encoder's output; `support_steps=0` skips that and reads the cached trained word vectors.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from baselines.metatrained import seeded_init
from baselines.ner import NearestTokenKey, support_words
from baselines.ner_training import NNShot, SupervisedTaggingConfig, TokenLearner, bio_tags
from benchmark.core.configs import EVALUATION_ONLY, ConfigError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry
from benchmark.core.types import Encoder, Episode, EpisodeSource, TaggedSentence
from benchmark.engine.tuned_encoder import TrainableTransformer


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
        tags, vectors, labels = support_words(words, support)
        return NearestTokenKey(words, tags, vectors, labels, self.config.distance)

    def cell_report(self) -> dict[str, object]:
        """For the record: support fine-tuning steps per episode (none: the cached vectors)."""
        if not self.support_steps_taken:
            return {}
        return {"support_fine_tuning_steps": self.support_steps_taken,
                "support_lr": self.config.support_lr}  # fmt: skip


METHODS.add(
    "container",
    MethodEntry(
        "CONTaiNER (Das et al. 2022): Gaussian token embeddings trained contrastively on the "
        "source split, a copy fine-tuned on each test support set, then the nearest support word",
        ContainerConfig(),
        Container,
        kinds=("tagging",),
        trainable=True,
    ),
)
