"""Logistic regression (a linear probe) on frozen encoder embeddings."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.batched import EpisodeIndex, EpisodeShape, gather, score_batched
from benchmark.methods import MethodContext, MethodEntry, label_index
from benchmark.registry import METHODS
from benchmark.types import Episode, Example

MAX_BATCHED_SUPPORT = 128  # episodes with larger support sets are fitted one by one
MAX_BOUND_STEPS = 500
FIT_TOLERANCE = 1e-5  # largest gradient entry at which the batched fit stops
SPAN_TOLERANCE = 1e-9  # Gram eigenvalues below this times the largest are null directions
GRAM_BYTES = 64 * 2**20  # problems per batch: this over one float64 Gram matrix's bytes


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
        `MAX_BATCHED_SUPPORT` support examples; larger episodes go through `fit` one by one)."""
        c = self.config.c

        def predict(x: torch.Tensor, batch: EpisodeIndex) -> torch.Tensor:
            weight, bias = fit_logistic_regression_batched(
                gather(x, batch.support), batch.support_labels, batch.n_way, c
            )
            return (gather(x, batch.query) @ weight.mT + bias.unsqueeze(1)).argmax(-1)

        def batchable(shape: EpisodeShape) -> bool:
            return shape.support <= MAX_BATCHED_SUPPORT

        return score_batched(episodes, self.context.embed, predict, self, batchable)


def fit_logistic_regression_batched(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (b, n_classes, dim) and biases (b, n_classes) of `b` independent problems
    `(x[i], y[i])`, each minimising the objective of `fit_logistic_regression`.

    The optimal weights lie in the span of the support rows, so each problem is solved in
    orthonormal coordinates of that span (from the eigenvectors of the support Gram matrix),
    where the penalty is isotropic. The solver is Böhning's bound optimisation: the log-loss
    Hessian is bounded by `(I - 11^T/n)/2 (x) F^T F`, and on the class-centred parameters (where
    the iterates stay) that bound is the same small matrix for every class, so it is factorised
    once per problem (inverted) and every step is a gradient and a small matmul. Each step lowers
    the objective; the error shrinks geometrically, and all problems stop when every gradient entry
    is below `FIT_TOLERANCE`. The unpenalised bias is only defined up to a constant shared by
    all classes (predictions ignore it); it is returned centred.
    """
    b, s = y.shape
    step = max(1, GRAM_BYTES // (8 * s * s))
    if b > step:
        parts = [
            fit_logistic_regression_batched(x[i : i + step], y[i : i + step], n_classes, c)
            for i in range(0, b, step)
        ]
        return torch.cat([w for w, _ in parts]), torch.cat([v for _, v in parts])
    values, vectors = torch.linalg.eigh((x @ x.mT).double())  # Gram = U diag(values) U^T
    kept = values > SPAN_TOLERANCE * values[:, -1:].clamp_min(1e-300)
    root = values.clamp_min(0).sqrt() * kept
    coordinates = vectors * root.unsqueeze(1)  # (b, s, s): rows z_i with z_i . z_j = x_i . x_j
    features = torch.cat([coordinates, coordinates.new_ones(b, s, 1)], -1)  # (b, s, s + 1)
    penalty = features.new_full((s + 1,), 1 / c)
    penalty[s] = 0.0  # the bias is not penalised
    bound = features.mT @ features / 2 + torch.diag(penalty)
    bound += (
        1e-10
        * bound.diagonal(dim1=-2, dim2=-1).amax(-1)[:, None, None]
        * torch.eye(s + 1, dtype=bound.dtype, device=bound.device)
    )  # null directions of a singular Gram matrix
    inverse = torch.cholesky_inverse(torch.linalg.cholesky(bound)).to(x.dtype)
    features, penalty = features.to(x.dtype), penalty.to(x.dtype)
    target = torch.nn.functional.one_hot(y, n_classes).to(x.dtype).mT  # (b, n, s)
    theta = features.new_zeros(b, n_classes, s + 1)
    for iteration in range(1, MAX_BOUND_STEPS + 1):
        probs = torch.softmax(theta @ features.mT, -2)  # (b, n, s): softmax over few classes
        gradient = (probs - target) @ features + theta * penalty
        if iteration % 5 == 0 and gradient.abs().amax() < FIT_TOLERANCE:
            break
        theta = theta - gradient @ inverse  # the bound is symmetric
    inverse_root = torch.where(kept, 1 / root.clamp_min(1e-300), 0.0).to(x.dtype)
    span = vectors.to(x.dtype) * inverse_root.unsqueeze(1)  # (b, s, s): x -> coordinates
    weight = theta[..., :s] @ span.mT @ x
    bias = theta[..., s]
    return weight, bias - bias.mean(-1, keepdim=True)


METHODS.add(
    "logistic-regression",
    MethodEntry(
        "L2-regularised multinomial logistic regression (C=1, L-BFGS) on frozen embeddings",
        LogisticRegressionConfig(),
        LogisticRegression,
    ),
)
