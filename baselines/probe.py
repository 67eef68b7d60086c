"""Logistic regression (a linear probe) on frozen encoder embeddings."""

from __future__ import annotations

import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.metrics import Scores
from benchmark.core.types import Episode, Example
from benchmark.engine.batched import GATHER_BYTES, EpisodeBatch, EpisodeShape, score_batched

MAX_BATCHED_SUPPORT = 128  # episodes with larger support sets are fitted one by one
MAX_BOUND_STEPS = 500  # a safety cap; about 10-20 steps converge
FIT_TOLERANCE = 1e-5  # largest gradient entry at which the batched fit stops
SPAN_TOLERANCE = 1e-9  # the Gram ridge, relative to its largest diagonal entry
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

    def score_batch(self, episodes: Sequence[Episode]) -> Scores:
        """Scores of each episode, fitted together by `fit_logistic_regression_batched`, which
        solves to convergence (up to `MAX_BATCHED_SUPPORT` support examples; larger episodes,
        and every episode when `max_iter` stops L-BFGS earlier than the default, go through
        `fit` one by one)."""
        c = self.config.c
        converges = self.config.max_iter >= LogisticRegressionConfig.max_iter

        def predict(batch: EpisodeBatch) -> torch.Tensor:
            weight, bias = fit_logistic_regression_batched(
                batch.support, batch.support_labels, batch.n_way, c
            )
            return (batch.query @ weight.mT + bias.unsqueeze(1)).argmax(-1)

        def batchable(shape: EpisodeShape) -> bool:
            return converges and shape.support <= MAX_BATCHED_SUPPORT

        return score_batched(episodes, self.context, predict, self, batchable, 4 * GATHER_BYTES)


def fit_logistic_regression_batched(
    x: torch.Tensor, y: torch.Tensor, n_classes: int, c: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (b, n_classes, dim) and biases (b, n_classes) of `b` independent problems
    `(x[i], y[i])`, each minimising the objective of `fit_logistic_regression`.

    The optimal weights lie in the span of the support rows, so each problem is solved in
    orthonormal coordinates of that span (from the Cholesky factor of the support Gram matrix,
    with a tiny ridge for repeated rows), where the penalty is isotropic. On the class-centred
    parameters (where the iterates stay) a curvature matrix of the form
    `a (I - 11^T/n) (x) F^T F + penalty` is the same small matrix for every class, so it is
    inverted once per problem and a step is a gradient and a matmul.
    Each step first tries `a = 1/n`, the Hessian at the start (uniform probabilities), which
    converges in about a third of the steps; a problem whose objective that step would raise
    takes the step of Böhning's bound (`a = 1/2`), which always lowers it, instead. All problems
    stop when every gradient entry is below `FIT_TOLERANCE`. The unpenalised bias is only
    defined up to a constant shared by all classes (predictions ignore it); it is returned
    centred.
    """
    b, s = y.shape
    step = max(1, GRAM_BYTES // (8 * s * s))
    if b > step:
        parts = [
            fit_logistic_regression_batched(x[i : i + step], y[i : i + step], n_classes, c)
            for i in range(0, b, step)
        ]
        return torch.cat([w for w, _ in parts]), torch.cat([v for _, v in parts])
    gram = (x @ x.mT).double()
    eye = torch.eye(s, dtype=gram.dtype, device=gram.device)
    ridge = SPAN_TOLERANCE * gram.diagonal(dim1=-2, dim2=-1).amax(-1).clamp_min(1e-30)
    lower = torch.linalg.cholesky(gram + ridge[:, None, None] * eye)  # Gram = L L^T
    # Rows of L are coordinates z_i with z_i . z_j = x_i . x_j; a vector x maps to L^-1 X x.
    features = torch.cat([lower, lower.new_ones(b, s, 1)], -1)  # (b, s, s + 1)
    penalty = features.new_full((s + 1,), 1 / c)
    penalty[s] = 0.0  # the bias is not penalised
    fast = _curvature_inverse(features, penalty, 1 / n_classes).to(x.dtype)
    safe = _curvature_inverse(features, penalty, 1 / 2).to(x.dtype)
    features, penalty = features.to(x.dtype), penalty.to(x.dtype)
    target = torch.nn.functional.one_hot(y, n_classes).to(x.dtype).mT  # (b, n, s)

    def evaluate(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = theta @ features.mT  # (b, n, s): reductions over few classes, not the last dim
        loss = (torch.logsumexp(logits, -2) - (logits * target).sum(-2)).sum(-1)
        return loss + (theta * theta * penalty).sum((-2, -1)) / 2, logits

    theta = features.new_zeros(b, n_classes, s + 1)
    value, logits = evaluate(theta)
    for _ in range(MAX_BOUND_STEPS):
        gradient = (torch.softmax(logits, -2) - target) @ features + theta * penalty
        if gradient.abs().amax() < FIT_TOLERANCE:
            break
        candidate = theta - gradient @ fast  # the curvature matrices are symmetric
        new_value, new_logits = evaluate(candidate)
        worse = new_value > value
        if worse.any():
            candidate = torch.where(worse[:, None, None], theta - gradient @ safe, candidate)
            new_value, new_logits = evaluate(candidate)
        theta, value, logits = candidate, new_value, new_logits
    else:
        gradient = (torch.softmax(logits, -2) - target) @ features + theta * penalty
        largest = gradient.abs().flatten(1).amax(-1)
        if bool((largest >= FIT_TOLERANCE).any()):
            warnings.warn(
                f"batched logistic regression: {int((largest >= FIT_TOLERANCE).sum())} of {b} "
                f"problems stopped unconverged after {MAX_BOUND_STEPS} steps (largest gradient "
                f"{float(largest.max()):.2g}; c={c} may be too weak a penalty)",
                RuntimeWarning,
                stacklevel=2,
            )
    to_coordinates = torch.linalg.solve_triangular(lower, eye, upper=False).to(x.dtype)
    weight = theta[..., :s] @ to_coordinates @ x
    bias = theta[..., s]
    return weight, bias - bias.mean(-1, keepdim=True)


def _curvature_inverse(features: torch.Tensor, penalty: torch.Tensor, a: float) -> torch.Tensor:
    """(b, f, f) inverses of `a F^T F + diag(penalty)`, with a tiny ridge for the null directions
    of a singular Gram matrix."""
    matrix = a * features.mT @ features + torch.diag(penalty)
    scale = matrix.diagonal(dim1=-2, dim2=-1).amax(-1)[:, None, None]
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.cholesky_inverse(torch.linalg.cholesky(matrix + 1e-10 * scale * eye))


METHODS.add(
    "logistic-regression",
    MethodEntry(
        "L2-regularised multinomial logistic regression (C=1, L-BFGS) on frozen embeddings",
        LogisticRegressionConfig(),
        LogisticRegression,
    ),
)
