"""Logistic regression (a linear probe) on frozen encoder embeddings."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.batched import EpisodeIndex, EpisodeShape, score_batched
from benchmark.methods import MethodContext, MethodEntry, label_index
from benchmark.registry import METHODS
from benchmark.types import Episode, Example

NEWTON_MAX_PARAMETERS = 256  # n_way * (k_shot*n_way + 1) above this: fitted one by one
NEWTON_MAX_STEPS = 50
HESSIAN_BYTES = 64 * 2**20  # problems per Newton batch: this over one float64 Hessian's bytes


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

    def score_batch(self, episodes: Sequence[Episode]) -> list[float]:
        """Accuracy of each episode, fitted together by `fit_logistic_regression_batched` (up to
        `NEWTON_MAX_PARAMETERS` per problem; larger episodes go through `fit` one by one)."""
        c = self.config.c

        def predict(x: torch.Tensor, batch: EpisodeIndex) -> torch.Tensor:
            weight, bias = fit_logistic_regression_batched(
                x[batch.support], batch.support_labels, batch.n_way, c
            )
            return (x[batch.query].double() @ weight.mT + bias.unsqueeze(1)).argmax(-1)

        def batchable(shape: EpisodeShape) -> bool:
            return shape.n_way * (shape.support + 1) <= NEWTON_MAX_PARAMETERS

        return score_batched(episodes, self.context.embed, predict, self, batchable)


def fit_logistic_regression_batched(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 weights (b, n_classes, dim) and biases (b, n_classes) of `b` independent problems
    `(x[i], y[i])`, each minimising the objective of `fit_logistic_regression`.

    The optimal weights lie in the span of the support rows (W = A X), so Newton's method runs on
    A (n_classes, s) and the bias: a small Hessian per problem, built and solved as one batch, a
    backtracking line search and a convergence test per problem. The unpenalised bias is only
    defined up to a constant shared by all classes (predictions ignore it); its sum is pinned at 0.
    """
    b, s = y.shape
    n, a = n_classes, s + 1
    step = max(1, HESSIAN_BYTES // (8 * (n * a) ** 2))
    if b > step:
        parts = [
            fit_logistic_regression_batched(x[i : i + step], y[i : i + step], n, c)
            for i in range(0, b, step)
        ]
        return torch.cat([w for w, _ in parts]), torch.cat([v for _, v in parts])
    x64 = x.double()
    kernel = x64 @ x64.mT  # (b, s, s)
    features = torch.cat([kernel, kernel.new_ones(b, s, 1)], -1)  # logits = features @ theta^T
    target = torch.nn.functional.one_hot(y, n).double()  # (b, s, n)

    def objective(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = features @ theta.mT
        loss = (torch.logsumexp(logits, -1) - (logits * target).sum(-1)).sum(-1)
        span = theta[..., :s]
        penalty = ((span @ kernel) * span).sum((-2, -1)) / (2 * c)
        return loss + penalty + theta[..., s].sum(-1) ** 2 / 2, logits

    theta = kernel.new_zeros(b, n, a)
    value, logits = objective(theta)
    active = torch.ones(b, dtype=torch.bool, device=x.device)
    eye = torch.eye(n * a, dtype=torch.float64, device=x.device)
    for _ in range(NEWTON_MAX_STEPS):
        probs = torch.softmax(logits, -1)
        grad = (probs - target).mT @ features  # (b, n, a)
        grad[..., :s] += theta[..., :s] @ kernel / c
        grad[..., s] += theta[..., s].sum(-1, keepdim=True)
        weighted = probs.unsqueeze(-1) * features.unsqueeze(-2)  # (b, s, n, a)
        flat = weighted.reshape(b, s, n * a)
        hessian = -(flat.mT @ flat)
        blocks = hessian.view(b, n, a, n, a).diagonal(dim1=1, dim2=3)  # (b, a, a, n) view
        blocks += torch.einsum("bsja,bsc->bacj", weighted, features)
        blocks[:, :s, :s] += kernel.unsqueeze(-1) / c
        hessian.view(b, n, a, n, a)[:, :, s, :, s] += 1
        scale = hessian.diagonal(dim1=-2, dim2=-1).amax(-1).clamp_min(1.0)
        hessian += 1e-10 * scale[:, None, None] * eye  # null directions of a singular kernel
        direction = -torch.linalg.solve(hessian, grad.reshape(b, n * a)).reshape(b, n, a)
        decrease = (grad * direction).sum((-2, -1))  # <= 0; -decrease / 2 estimates the gap
        active &= -decrease > 1e-12 * value.abs().clamp_min(1.0)
        if not active.any():
            break
        t = torch.ones_like(value)
        for _ in range(40):
            candidate = theta + t[:, None, None] * direction
            new_value, new_logits = objective(candidate)
            accepted = new_value <= value + 1e-4 * t * decrease
            if bool((accepted | ~active).all()):
                break
            t = torch.where(accepted, t, t / 2)
        move = active & accepted
        theta = torch.where(move[:, None, None], candidate, theta)
        value = torch.where(move, new_value, value)
        logits = torch.where(move[:, None, None], new_logits, logits)
    return theta[..., :s] @ x64, theta[..., s]


METHODS.add(
    "logistic-regression",
    MethodEntry(
        "L2-regularised multinomial logistic regression (C=1, L-BFGS) on frozen embeddings",
        LogisticRegressionConfig(),
        LogisticRegression,
    ),
)
