"""Logistic regression (a linear probe) on frozen encoder embeddings."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.methods import MethodContext, MethodEntry, label_index
from benchmark.registry import METHODS
from benchmark.types import Example


@dataclass(frozen=True)
class LogisticRegressionConfig:
    """Multinomial logistic regression with an L2 penalty on the weights (not the bias).

    Minimises sum(cross-entropy) + |W|^2 / (2c), the objective of scikit-learn's
    `LogisticRegression(C=c)`, with L-BFGS and a strong-Wolfe line search.
    """

    c: float = 1.0
    max_iter: int = 100


def fit_logistic_regression(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (n_classes, dim) and bias (n_classes,) minimising the penalised log-loss."""
    weight = torch.zeros(n_classes, x.shape[1], dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(n_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-10,
        line_search_fn="strong_wolfe",
    )
    target = y.to(x.device)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        logits = x @ weight.T + bias
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        loss = loss + (weight * weight).sum() / (2 * c)
        loss.backward()
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
    return weight.detach(), bias.detach()


@dataclass(frozen=True)
class LinearPredictor:
    """Predicts argmax(x W^T + b) over the support labels."""

    context: MethodContext
    names: list[str]
    weight: torch.Tensor
    bias: torch.Tensor

    def predict(self, texts: Sequence[str]) -> list[str]:
        logits = self.context.embed(texts) @ self.weight.T + self.bias
        return [self.names[i] for i in logits.argmax(-1).tolist()]


class LogisticRegression:
    """A linear probe fitted from scratch on each episode's support embeddings."""

    def __init__(self, config: LogisticRegressionConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[Example], rng: random.Random) -> LinearPredictor:
        names, labels = label_index(support)
        x = self.context.embed([e.text for e in support])
        weight, bias = fit_logistic_regression(
            x, labels, len(names), self.config.c, self.config.max_iter
        )
        return LinearPredictor(self.context, names, weight, bias)


METHODS.add(
    "logistic-regression",
    MethodEntry(
        "L2-regularised multinomial logistic regression (C=1, L-BFGS) on frozen embeddings",
        LogisticRegressionConfig(),
        LogisticRegression,
    ),
)
