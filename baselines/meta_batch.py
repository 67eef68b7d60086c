"""A MAML meta batch over cached embeddings, all episodes at once under `torch.func.vmap`.

Every episode's input is then a fixed tensor. With the zero head, the first inner step moves only
the head (the body's gradient is exactly zero), so it is taken on the head alone. With a scalar
inner learning rate (MAML, first-order MAML) the adapted linear weights are never formed: an SGD
step adds `-lr * delta^T a` (output gradients `delta`, inputs `a` of the support examples) to a
weight, so the adapted layer maps `x` to its initial output minus `(x a^T + 1) lr delta` per
step, a low-rank correction (`LowRank`). Both give the per-episode loop's meta-gradients up to
rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn
from torch.func import functional_call, grad

from benchmark.engine.features import ResidualAdapter

Params = dict[str, torch.Tensor]
Rates = Mapping[str, torch.Tensor | float]
HEAD = ("head.weight", "head.bias")


def head(params: Params, features: torch.Tensor) -> torch.Tensor:
    """(examples, classes) logits of the linear head in `params`."""
    return features @ params["head.weight"].T + params["head.bias"]


class EpisodeTensors(NamedTuple):
    """Episodes as tensors: embeddings (..., examples, dim) and label indices (..., examples);
    stacked over a meta batch, or one episode's slice under `vmap`."""

    support: torch.Tensor
    support_targets: torch.Tensor
    query: torch.Tensor
    query_targets: torch.Tensor


@dataclass(frozen=True)
class MetaBatch:
    """Same-shape episodes of `classes` classes, stacked."""

    tensors: EpisodeTensors
    classes: int


@dataclass(frozen=True)
class EpisodeLoss:
    """One episode's query loss after `steps` inner SGD steps from the meta-learned `body` (the
    adapter's parameters) and a zero head, differentiable with respect to `body` and tensor
    `lrs`; the inner gradients by `torch.func.grad`, so that it runs under `vmap`."""

    adapter: nn.Module
    body: Params
    lrs: Rates
    classes: int
    steps: int
    first_order: bool

    def stop(self, value: torch.Tensor) -> torch.Tensor:
        """`value`, detached in first-order meta-learning (inner gradients are constants)."""
        return value.detach() if self.first_order else value

    def features(self, params: Params, inputs: torch.Tensor) -> torch.Tensor:
        """The adapter, under the body parameters in `params`, over cached embeddings."""
        weights = {n.removeprefix("adapter."): p for n, p in params.items() if n not in HEAD}
        return functional_call(self.adapter, weights, (inputs,))

    def __call__(self, episode: EpisodeTensors) -> torch.Tensor:
        support, support_targets, query, query_targets = episode
        start = self.features(self.body, support)
        zero = {
            "head.weight": support.new_zeros(self.classes, start.shape[-1]),
            "head.bias": support.new_zeros(self.classes),
        }

        def support_loss(adapted: Params, params: Params) -> torch.Tensor:
            moves_body = any(n not in HEAD for n in adapted)
            params = {**params, **adapted}
            features = self.features(params, support) if moves_body else start
            return nn.functional.cross_entropy(head(params, features), support_targets)

        # From the zero head the body's gradient is exactly zero: the first step moves the head.
        params, names = {**self.body, **zero}, list(HEAD)
        for _ in range(self.steps):
            grads = grad(support_loss)({n: params[n] for n in names}, params)
            params = {**params, **{n: params[n] - self.lrs[n] * self.stop(grads[n]) for n in names}}
            names = list(self.lrs)
        return nn.functional.cross_entropy(
            head(params, self.features(params, query)), query_targets
        )


def low_rank_applies(adapter: nn.Module, body: Params, lrs: Rates) -> bool:
    """Whether `LowRankEpisodeLoss` applies: one scalar learning rate for a residual adapter and
    the head, all adapted."""
    rates = set(lrs.values())
    return (
        isinstance(adapter, ResidualAdapter)
        and set(lrs) == {*body, *HEAD}
        and len(rates) == 1
        and not isinstance(next(iter(rates)), torch.Tensor)
    )


class LowRankEpisodeLoss(EpisodeLoss):
    """`EpisodeLoss` with the adapted adapter and head kept as `LowRank` layers
    (`low_rank_applies`); the layers' output gradients are written out by the chain rule
    (`output_gradients`) instead of a nested `torch.func.grad`, so the outer backward walks one
    plain graph."""

    def __call__(self, episode: EpisodeTensors) -> torch.Tensor:
        support, support_targets, query, query_targets = episode
        body, classes = self.body, self.classes
        rate = float(next(iter(self.lrs.values())))
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
        for _ in range(self.steps):
            deltas, inputs = output_gradients(layers, support, down, targets)
            moved = {
                n: layers[n].step(self.stop(inputs[n]), rate * self.stop(deltas[n])) for n in names
            }
            layers, names = {**layers, **moved}, list(layers)
        logits, _ = adapter_logits(layers, query, None)
        return nn.functional.cross_entropy(logits, query_targets)


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
    """Head logits over `ResidualAdapter` features of `x` under the `LowRank` layers (`down`: the
    down layer's output for `x` under its initial weights, if known), and each layer's inputs
    and the down layer's output (`"pre"`)."""
    pre, hidden, features = ResidualAdapter.parts(
        x, lambda inputs: layers["down"](inputs, down), layers["up"]
    )
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
