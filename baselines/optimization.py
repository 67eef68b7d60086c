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

Meta-training over cached embeddings (`unfreeze_layers` 0) runs a meta batch of same-shape episodes
at once with `torch.func.vmap`: every episode's input is then a fixed tensor. With the zero head,
the first inner step moves only the head (the body's gradient is exactly zero), so it is taken on
the head alone. With a scalar inner learning rate (MAML, first-order MAML) the adapted linear
weights are never formed: an SGD step adds `-lr * delta^T a` (output gradients `delta`, inputs `a`
of the support examples) to a weight, so the adapted layer maps `x` to its initial output minus
`(x a^T + 1) lr delta` per step, a low-rank correction (`LowRank`). Both give the loop's
meta-gradients up to rounding.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from baselines.metatrained import EpisodeLearner, FeatureConfig
from benchmark.configs import ConfigError
from benchmark.features import ResidualAdapter
from benchmark.methods import MethodContext, MethodEntry, label_index
from benchmark.registry import METHODS
from benchmark.training import MetaTrainConfig
from benchmark.types import Episode, Example

Params = dict[str, torch.Tensor]
Adapt = Literal["all", "adapter", "head"]
HEAD = ("head.weight", "head.bias")


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
    and in evaluation alike."""

    inner_steps: int = 5
    inner_lr: float = 0.5

    def validate(self) -> None:
        if self.inner_steps < 1:
            raise ConfigError(f"option inner_steps={self.inner_steps}: expected at least 1")
        if self.inner_lr <= 0:
            raise ConfigError(f"option inner_lr={self.inner_lr}: expected > 0")


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


@dataclass(frozen=True)
class ReptileConfig(InnerLoopConfig):
    """Reptile: the inner loop adapts everything on all of a training episode's examples, and the
    outer step moves the initialisation `meta_lr` of the way toward the mean adapted weights."""

    meta_lr: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not 0 < self.meta_lr <= 1:
            raise ConfigError(f"option meta_lr={self.meta_lr}: expected in (0, 1] for Reptile")
        if self.inner_steps < 2:
            raise ConfigError(
                f"option inner_steps={self.inner_steps}: Reptile needs at least 2 (from the zero "
                "head the first step moves only the head, so the initialisation would never move)"
            )


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
        """Each adapted parameter's inner learning rate."""
        return dict.fromkeys(self.adapted_names(), self.config.inner_lr)

    def initial(self, body: Params, classes: int) -> Params:
        """The episode's starting parameters: `body` and a zero head for `classes` classes."""
        dim, device = self.features.dim, self.context.device
        weight = torch.zeros(classes, dim, device=device, requires_grad=True)
        bias = torch.zeros(classes, device=device, requires_grad=True)
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
        if batch is None:
            return torch.stack([self.query_loss(e) for e in episodes]).mean()
        lrs = self.inner_lrs()
        loss = self.low_rank_loss if self.low_rank(lrs) else self.vmapped_loss
        episode = partial(loss, self.body(), lrs, batch.classes)
        return vmap(episode)(*batch.tensors()).mean()

    def stack(self, episodes: Sequence[Episode]) -> EpisodeBatch | None:
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
        return EpisodeBatch(
            inputs[:, :supports],
            targets[:, :supports],
            inputs[:, supports:],
            targets[:, supports:],
            classes,
        )

    def adapter(self, params: Params, inputs: torch.Tensor) -> torch.Tensor:
        """The adapter, under the body parameters in `params`, over cached embeddings."""
        weights = {n.removeprefix("adapter."): p for n, p in params.items() if n not in HEAD}
        return functional_call(self.features.adapter, weights, (inputs,))

    def stop(self, value: torch.Tensor) -> torch.Tensor:
        """`value`, detached in first-order meta-learning (inner gradients are constants)."""
        return value.detach() if self.first_order else value

    def vmapped_loss(
        self,
        body: Params,
        lrs: Mapping[str, torch.Tensor | float],
        classes: int,
        support: torch.Tensor,
        support_targets: torch.Tensor,
        query: torch.Tensor,
        query_targets: torch.Tensor,
    ) -> torch.Tensor:
        """One episode's `query_loss` from its embeddings, the inner steps by `torch.func.grad`
        (under `vmap` over the episodes of a meta batch)."""
        start = self.adapter(body, support)
        zero = {
            "head.weight": support.new_zeros(classes, start.shape[-1]),
            "head.bias": support.new_zeros(classes),
        }

        def support_loss(adapted: Params, params: Params) -> torch.Tensor:
            moves_body = any(n not in HEAD for n in adapted)
            params = {**params, **adapted}
            features = self.adapter(params, support) if moves_body else start
            return nn.functional.cross_entropy(head(params, features), support_targets)

        # From the zero head the body's gradient is exactly zero: the first step moves the head.
        params, names = {**body, **zero}, list(HEAD)
        for _ in range(self.config.inner_steps):
            grads = grad(support_loss)({n: params[n] for n in names}, params)
            params = {**params, **{n: params[n] - lrs[n] * self.stop(grads[n]) for n in names}}
            names = list(lrs)
        features = self.adapter(params, query)
        return nn.functional.cross_entropy(head(params, features), query_targets)

    def low_rank(self, lrs: Mapping[str, torch.Tensor | float]) -> bool:
        """Whether `low_rank_loss` applies: one scalar learning rate for a residual adapter and the
        head, all adapted."""
        rates = set(lrs.values())
        return (
            isinstance(self.features.adapter, ResidualAdapter)
            and set(lrs) == {*self.body(), *HEAD}
            and len(rates) == 1
            and not isinstance(next(iter(rates)), torch.Tensor)
        )

    def low_rank_loss(
        self,
        body: Params,
        lrs: Mapping[str, torch.Tensor | float],
        classes: int,
        support: torch.Tensor,
        support_targets: torch.Tensor,
        query: torch.Tensor,
        query_targets: torch.Tensor,
    ) -> torch.Tensor:
        """`vmapped_loss` with the adapted adapter and head kept as `LowRank` layers (`low_rank`);
        the layers' output gradients are written out by the chain rule (`output_gradients`)
        instead of a nested `torch.func.grad`, so the outer backward walks one plain graph."""
        rate = float(next(iter(lrs.values())))
        layers = {
            "down": LowRank(body["adapter.down.weight"], body["adapter.down.bias"]),
            "up": LowRank(body["adapter.up.weight"], body["adapter.up.bias"]),
            "head": LowRank(
                support.new_zeros(classes, support.shape[-1]), support.new_zeros(classes)
            ),
        }
        down = layers["down"](support)
        targets = nn.functional.one_hot(support_targets, classes).to(support.dtype)

        # From the zero head the body's gradient is exactly zero: the first step moves the head.
        names: Sequence[str] = ("head",)
        for _ in range(self.config.inner_steps):
            deltas, inputs = output_gradients(layers, support, down, targets)
            moved = {
                n: layers[n].step(self.stop(inputs[n]), rate * self.stop(deltas[n])) for n in names
            }
            layers, names = {**layers, **moved}, list(layers)
        logits, _ = adapter_logits(layers, query, None)
        return nn.functional.cross_entropy(logits, query_targets)

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


def head(params: Params, features: torch.Tensor) -> torch.Tensor:
    """(examples, classes) logits of the linear head in `params`."""
    return features @ params["head.weight"].T + params["head.bias"]


@dataclass(frozen=True)
class EpisodeBatch:
    """Same-shape episodes as tensors: embeddings (episodes, examples, dim) and label indices."""

    support: torch.Tensor
    support_targets: torch.Tensor
    query: torch.Tensor
    query_targets: torch.Tensor
    classes: int

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.support, self.support_targets, self.query, self.query_targets


@dataclass(frozen=True)
class LowRank:
    """A linear layer after SGD steps on a support set: its initial `weight` and `bias` and, for
    all steps so far, the layer's `inputs` a (stacked over the steps' support examples) and the
    learning rate times output gradients d; the steps subtracted d^T a from the weight and d^T 1
    from the bias."""

    weight: torch.Tensor
    bias: torch.Tensor
    inputs: torch.Tensor | None = None
    deltas: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor, start: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output for `x`, given its output under the initial weights (`start`)."""
        out = x @ self.weight.T + self.bias if start is None else start
        if self.inputs is None:
            return out
        return out - (x @ self.inputs.T + 1) @ self.deltas

    def input_gradient(self, grad_out: torch.Tensor) -> torch.Tensor:
        """The gradient with respect to the layer's input, given the one of its output."""
        out = grad_out @ self.weight
        if self.inputs is None:
            return out
        return out - (grad_out @ self.deltas.T) @ self.inputs  # type: ignore[union-attr]

    def step(self, inputs: torch.Tensor, deltas: torch.Tensor) -> LowRank:
        if self.inputs is None:
            return LowRank(self.weight, self.bias, inputs, deltas)
        return LowRank(
            self.weight,
            self.bias,
            torch.cat([self.inputs, inputs]),
            torch.cat([self.deltas, deltas]),  # type: ignore[list-item]
        )


def adapter_logits(
    layers: Mapping[str, LowRank], x: torch.Tensor, down: torch.Tensor | None
) -> tuple[torch.Tensor, Params]:
    """Head logits over `ResidualAdapter` features `x + up(relu(down(x)))` (`down`: the down
    layer's output for `x` under its initial weights, if known), and each layer's inputs and
    the down layer's output (`"pre"`)."""
    pre = layers["down"](x, down)
    hidden = torch.relu(pre)
    features = x + layers["up"](hidden)
    logits = layers["head"](features)
    return logits, {"down": x, "up": hidden, "head": features, "pre": pre}


def output_gradients(
    layers: Mapping[str, LowRank], x: torch.Tensor, down: torch.Tensor, targets: torch.Tensor
) -> tuple[Params, Params]:
    """Gradients of the mean cross-entropy of `adapter_logits` (one-hot `targets`) with respect
    to each layer's output, by the chain rule written out (differentiable, so that MAML's outer
    gradient goes through them); and each layer's inputs."""
    logits, inputs = adapter_logits(layers, x, down)
    head_out = (torch.softmax(logits, -1) - targets) / len(x)
    up_out = layers["head"].input_gradient(head_out)  # features = x + up(...)
    down_out = layers["up"].input_gradient(up_out) * (inputs["pre"] > 0)
    return {"head": head_out, "up": up_out, "down": down_out}, inputs


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


class Reptile(GradientMetaLearner):
    """Reptile: theta <- theta + meta_lr * (mean of the adapted theta' - theta), plain SGD on the
    body (the head starts at zero in every episode, so only the body has an initialisation)."""

    def __init__(self, config: ReptileConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.first_order = True

    def adapted(self, episode: Episode) -> tuple[Params, float]:
        """The body after the inner loop on all of `episode`'s examples, and their loss there."""
        examples = [*episode.support, *episode.query]
        names, _ = label_index(examples)
        body = {n: p.detach().requires_grad_() for n, p in self.body().items()}
        params = self.adapt_to(
            self.initial(body, len(names)), examples, names, self.inner_lrs(), True
        )
        params = {n: p.detach() for n, p in params.items()}
        with torch.no_grad():
            features = self.embed(params, [e.text for e in examples])
            loss = nn.functional.cross_entropy(
                head(params, features), self.targets(names, examples)
            )
        return {n: params[n] for n in body}, float(loss)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> float:
        self.train()
        adapted, losses = zip(*(self.adapted(e) for e in episodes), strict=True)
        with torch.no_grad():
            for name, parameter in self.body().items():
                mean = torch.stack([a[name] for a in adapted]).mean(0)
                parameter.add_(self.config.meta_lr * (mean - parameter))
        return sum(losses) / len(losses)


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
    "reptile",
    MethodEntry(
        "Reptile: SGD on each training episode, the initialisation moved meta_lr of the way "
        "toward the mean adapted weights (Nichol et al. 2018)",
        ReptileConfig(),
        Reptile,
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
