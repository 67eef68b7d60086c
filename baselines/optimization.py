"""Optimisation-based meta-learning: MAML (Finn et al. 2017) with true second-order gradients,
first-order MAML, Reptile (Nichol et al. 2018), ANIL (Raghu et al. 2020) and Meta-SGD (Li et al.
2017), written with `torch.func.functional_call` over trainable text features and an N-way
linear head.

The inner loop takes `inner_steps` SGD steps on the support set's cross-entropy from the meta-
learned initialisation; every adapted parameter set is a dict from parameter name to tensor.
Labels index the sorted label names of an episode, so a meta-learned per-class head would learn
an arbitrary order: the head starts at zero in every episode (the "zero trick" of Triantafillou et
al. 2020). That loses nothing, because any permutation-symmetric head init (every class the same
row w0 and bias b0) gives exactly the zero head's predictions and gradients: softmax ignores a
logit shift that is common to all classes. After one step the zero head scores a query by its dot
product with each class's support features minus their mean, a prototype classifier.

Meta-training over cached embeddings (`unfreeze_layers` 0) runs a meta batch at once
(`baselines.meta_batch`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, vmap

from baselines.meta_batch import (
    HEAD,
    EpisodeLoss,
    EpisodeTensors,
    LowRankEpisodeLoss,
    MetaBatch,
    Params,
    head,
    low_rank_applies,
)
from baselines.metatrained import EpisodeLearner, FeatureConfig
from benchmark.core.configs import ConfigError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.types import Episode, Example
from benchmark.engine.training import MetaTrainConfig

Adapt = Literal["all", "adapter", "head"]
ENCODER = "transformer."  # parameter names of the unfrozen encoder, in `TextFeatures`


def inner_loop(
    loss: Callable[[Params], torch.Tensor],
    params: Params,
    lrs: Mapping[str, torch.Tensor | float],
    steps: int,
    first_order: bool,
) -> Params:
    """`steps` SGD steps on `loss` from `params`, updating only the parameters named in `lrs`
    (each with its learning rate, a number or a tensor broadcast to the parameter).

    Unless `first_order`, the steps are part of the autograd graph (`create_graph`), so the
    gradient of a loss at the result with respect to `params` (and tensor `lrs`) is the full,
    second-order one; with `first_order` the gradients are constants and that gradient is the
    gradient at the adapted parameters.
    """
    names = list(lrs)
    for _ in range(steps):
        grads = torch.autograd.grad(
            loss(params),
            [params[n] for n in names],
            create_graph=not first_order,
            materialize_grads=True,
        )
        params = {
            **params,
            **{n: params[n] - lrs[n] * g for n, g in zip(names, grads, strict=True)},
        }
    return params


@dataclass(frozen=True)
class InnerLoopConfig(FeatureConfig, MetaTrainConfig):
    """The inner loop: `inner_steps` SGD steps of `inner_lr` on the support set, in meta-training
    and in evaluation alike; unfrozen encoder weights that the inner loop adapts (`adapt=all`)
    step at `encoder_inner_lr`."""

    inner_steps: int = 5
    inner_lr: float = 0.5
    encoder_inner_lr: float = 1e-3

    def validate(self) -> None:
        if self.inner_steps < 1:
            raise ConfigError(f"option inner_steps={self.inner_steps}: expected at least 1")
        if self.inner_lr <= 0:
            raise ConfigError(f"option inner_lr={self.inner_lr}: expected > 0")
        if self.encoder_inner_lr <= 0:
            raise ConfigError(f"option encoder_inner_lr={self.encoder_inner_lr}: expected > 0")


@dataclass(frozen=True)
class MAMLConfig(InnerLoopConfig):
    """MAML: `adapt` names what the inner loop updates: `all` (head, adapter and unfrozen layers),
    `adapter` (head and adapter; unfrozen layers learn only in the outer loop) or `head` (that is
    ANIL); the rest is meta-learned in the outer loop only."""

    adapt: Adapt = "all"


@dataclass(frozen=True)
class ANILConfig(InnerLoopConfig):
    """ANIL: only the head adapts in the inner loop; `first_order` drops the second-order terms
    (the paper keeps them, and over the head alone they are cheap)."""

    first_order: bool = False


class GradientMetaLearner(EpisodeLearner):
    """Features (`EpisodeLearner`) and a zero-initialised N-way head adapted by `inner_loop`."""

    adapt: Adapt = "all"
    first_order: bool = False

    def __init__(self, config: InnerLoopConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.config: InnerLoopConfig = config

    def body(self) -> Params:
        """The features' trainable parameters, by name (the meta-learned initialisation)."""
        return {n: p for n, p in self.features.named_parameters() if p.requires_grad}

    def adapted_names(self) -> list[str]:
        """Names of the parameters the inner loop updates (`adapt`)."""
        if self.adapt == "head":
            return list(HEAD)
        body = [n for n in self.body() if self.adapt == "all" or n.startswith("adapter.")]
        return [*body, *HEAD]

    def inner_lrs(self) -> Mapping[str, torch.Tensor | float]:
        """Each adapted parameter's inner learning rate (`encoder_inner_lr` for the encoder's)."""
        config = self.config
        return {
            n: config.encoder_inner_lr if n.startswith(ENCODER) else config.inner_lr
            for n in self.adapted_names()
        }

    def initial(self, body: Params, classes: int) -> Params:
        """The episode's starting parameters: `body` and a zero head for `classes` classes."""
        like = next(iter(body.values()), None)
        kind = {
            "device": self.context.device,
            "dtype": torch.float32 if like is None else like.dtype,
        }
        weight = torch.zeros(classes, self.features.dim, requires_grad=True, **kind)
        bias = torch.zeros(classes, requires_grad=True, **kind)
        return {**body, "head.weight": weight, "head.bias": bias}

    def embed(self, params: Params, texts: Sequence[str]) -> torch.Tensor:
        """Features of `texts` under the body parameters in `params`."""
        body = {n: p for n, p in params.items() if n not in HEAD}
        return functional_call(self.features, body, (texts,))

    def adapt_to(
        self,
        params: Params,
        examples: Sequence[Example],
        names: list[str],
        lrs: Mapping[str, torch.Tensor | float],
        first_order: bool,
    ) -> Params:
        """`inner_loop` on the cross-entropy of `examples` (labels indexed by sorted `names`)."""
        targets = self.targets(names, examples)
        texts = [e.text for e in examples]
        fixed = None if any(n not in HEAD for n in lrs) else self.embed(params, texts)

        def loss(p: Params) -> torch.Tensor:
            features = self.embed(p, texts) if fixed is None else fixed
            return nn.functional.cross_entropy(head(p, features), targets)

        return inner_loop(loss, params, lrs, self.config.inner_steps, first_order)

    def targets(self, names: list[str], examples: Sequence[Example]) -> torch.Tensor:
        position = {name: i for i, name in enumerate(names)}
        return torch.tensor([position[e.label] for e in examples], device=self.context.device)

    def query_loss(self, episode: Episode) -> torch.Tensor:
        """Query cross-entropy after adapting on the support set, differentiable with respect to
        the initialisation (and learned learning rates)."""
        names, _ = label_index(episode.support)
        params = self.initial(self.body(), len(names))
        adapted = self.adapt_to(params, episode.support, names, self.inner_lrs(), self.first_order)
        features = self.embed(adapted, [e.text for e in episode.query])
        return nn.functional.cross_entropy(
            head(adapted, features), self.targets(names, episode.query)
        )

    def meta_loss(self, episodes: Sequence[Episode]) -> torch.Tensor:
        """Mean query loss of a meta batch (`query_loss`): all episodes at once under `vmap` when
        they are cached embeddings of one shape (`stack`), else episode by episode."""
        batch = self.stack(episodes)
        lrs = self.inner_lrs()
        if batch is None and any(n.startswith(ENCODER) for n in lrs):  # features move per step
            return torch.stack([self.query_loss(e) for e in episodes]).mean()
        if batch is None:  # the encoder stays put in the inner loop: one pass for the batch
            texts = [x.text for e in episodes for x in (*e.support, *e.query)]
            with self.embedding_once(texts, training=True):
                return torch.stack([self.query_loss(e) for e in episodes]).mean()
        loss = LowRankEpisodeLoss if self.low_rank(lrs) else EpisodeLoss
        episode = loss(self.features.adapter, self.body(), lrs, batch.classes,
                       self.config.inner_steps, self.first_order)  # fmt: skip
        return vmap(episode)(batch.tensors).mean()

    def stack(self, episodes: Sequence[Episode]) -> MetaBatch | None:
        """The episodes' cached embeddings and label indices, stacked; None when the features
        run the transformer or the episodes differ in shape."""
        shapes = {
            (len(e.support), len(e.query), len({x.label for x in e.support})) for e in episodes
        }
        if self.features.transformer is not None or len(shapes) != 1:
            return None
        ((supports, queries, classes),) = shapes
        targets = torch.stack(
            [self.targets(label_index(e.support)[0], [*e.support, *e.query]) for e in episodes]
        )
        texts = [x.text for e in episodes for x in (*e.support, *e.query)]
        inputs = self.context.embed(texts).view(len(episodes), supports + queries, -1)
        tensors = EpisodeTensors(
            inputs[:, :supports], targets[:, :supports], inputs[:, supports:], targets[:, supports:]
        )
        return MetaBatch(tensors, classes)

    def low_rank(self, lrs: Mapping[str, torch.Tensor | float]) -> bool:
        """Whether a meta batch runs in the low-rank form (`LowRankEpisodeLoss`)."""
        return low_rank_applies(self.features.adapter, self.body(), lrs)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> torch.Tensor:
        self.train()
        self.optimizer.zero_grad()
        loss = self.meta_loss(episodes)
        loss.backward()
        self.optimizer.step()
        return loss.detach()  # read by `meta_train` after it samples the next batch

    def fit(self, support: Sequence[Example], rng: random.Random) -> AdaptedPredictor:
        self.eval()
        names, _ = label_index(support)
        body = {n: p.detach().requires_grad_() for n, p in self.body().items()}
        lrs = {
            n: lr.detach() if isinstance(lr, torch.Tensor) else lr
            for n, lr in self.inner_lrs().items()
        }
        with torch.enable_grad():
            adapted = self.adapt_to(self.initial(body, len(names)), support, names, lrs, True)
        return AdaptedPredictor(self, names, {n: p.detach() for n, p in adapted.items()})


@dataclass(frozen=True)
class AdaptedPredictor:
    learner: GradientMetaLearner
    names: list[str]
    params: Params

    def predict(self, texts: Sequence[str]) -> list[str]:
        with torch.no_grad():
            logits = head(self.params, self.learner.embed(self.params, texts))
        return [self.names[i] for i in logits.argmax(-1).cpu().tolist()]


class MAML(GradientMetaLearner):
    """MAML: Adam on the query loss after the inner loop, differentiated through the inner loop
    (second order)."""

    def __init__(self, config: MAMLConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.adapt = config.adapt
        self.optimizer = self.make_optimizer()


class FirstOrderMAML(MAML):
    """First-order MAML: the outer gradient is the query loss's gradient at the adapted weights."""

    first_order = True


class ANIL(GradientMetaLearner):
    """ANIL: the inner loop adapts the head only; the body learns in the outer loop only."""

    adapt = "head"

    def __init__(self, config: ANILConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.first_order = config.first_order
        self.optimizer = self.make_optimizer()


class MetaSGD(GradientMetaLearner):
    """Meta-SGD: a learned inner learning rate per parameter entry (per feature for the head,
    shared by its class rows), meta-trained with the initialisation from `inner_lr`; second
    order, like MAML."""

    def __init__(self, config: MAMLConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.adapt = config.adapt
        body = self.body()
        shapes = {n: body[n].shape for n in self.adapted_names() if n in body}
        shapes.update({"head.weight": (1, self.features.dim), "head.bias": (1,)})
        device = context.device
        self.lrs = nn.ParameterDict(
            {
                lr_key(n): nn.Parameter(torch.full(shape, config.inner_lr, device=device))
                for n, shape in shapes.items()
            }
        )
        self.optimizer = self.make_optimizer()

    def inner_lrs(self) -> Mapping[str, torch.Tensor | float]:
        return {n: self.lrs[lr_key(n)] for n in self.adapted_names()}


def lr_key(name: str) -> str:
    """A parameter name as a `ParameterDict` key (no dots)."""
    return name.replace(".", "/")


METHODS.add(
    "maml",
    MethodEntry(
        "MAML meta-trained on the training classes with second-order gradients through the "
        "inner loop; zero-initialised head, adapter (and unfrozen layers) adapt too (adapt=all)",
        MAMLConfig(),
        MAML,
        trainable=True,
    ),
)
METHODS.add(
    "fomaml",
    MethodEntry(
        "first-order MAML: the outer gradient is taken at the adapted weights",
        MAMLConfig(),
        FirstOrderMAML,
        trainable=True,
    ),
)
METHODS.add(
    "anil",
    MethodEntry(
        "ANIL: MAML whose inner loop adapts only the head; the features learn in the outer "
        "loop only (Raghu et al. 2020)",
        ANILConfig(),
        ANIL,
        trainable=True,
    ),
)
METHODS.add(
    "meta-sgd",
    MethodEntry(
        "Meta-SGD: MAML with a learned inner learning rate per parameter (Li et al. 2017)",
        MAMLConfig(),
        MetaSGD,
        trainable=True,
    ),
)
