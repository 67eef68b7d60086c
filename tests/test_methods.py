"""Methods on hand-made embeddings, where the right answer is known."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from baselines.probe import fit_logistic_regression
from benchmark.core.methods import METHODS, MethodContext
from benchmark.core.types import Example

from helpers import TableEncoder

# Two classes. Prototype of "a" is (1, 0); prototype of "b" is (0, 3).
TABLE = {
    "a1": [2.0, 0.0],
    "a2": [0.0, 0.0],
    "b1": [0.0, 2.0],
    "b2": [0.0, 4.0],
    "near-a-by-euclid": [1.0, 1.4],  # |q-a|^2 = 1.96, |q-b|^2 = 3.56; cosine prefers b
    "far-along-a": [10.0, 0.5],
}
SUPPORT = [
    Example("1", "a1", "a"),
    Example("2", "a2", "a"),
    Example("3", "b1", "b"),
    Example("4", "b2", "b"),
]


def build(name: str):
    entry = METHODS.get(name)
    return entry.build(entry.config, MethodContext(TableEncoder(TABLE)))


def test_protonet_euclidean_uses_class_means():
    predictor = build("protonet").fit(SUPPORT, random.Random(0))
    assert predictor.predict(["near-a-by-euclid", "far-along-a", "b2"]) == ["a", "a", "b"]


def test_protonet_cosine_differs_where_angle_and_distance_disagree():
    predictor = build("protonet-cosine").fit(SUPPORT, random.Random(0))
    assert predictor.predict(["near-a-by-euclid", "far-along-a"]) == ["b", "a"]


def test_nearest_neighbour_uses_single_examples_not_means():
    predictor = build("nearest-neighbour").fit(SUPPORT, random.Random(0))
    assert predictor.predict(["far-along-a", "b1", "near-a-by-euclid"]) == ["a", "b", "b"]


def test_majority_is_exactly_one_over_n_on_balanced_episodes():
    predictor = build("majority").fit(SUPPORT, random.Random(3))
    assert len(set(predictor.predict(["a1", "b1", "b2"]))) == 1
    unbalanced = [*SUPPORT, Example("5", "b1", "b")]
    assert build("majority").fit(unbalanced, random.Random(3)).predict(["x"]) == ["b"]


def test_random_is_uniform_over_support_labels():
    predictor = build("random").fit(SUPPORT, random.Random(5))
    predicted = predictor.predict(["q"] * 4000)
    assert set(predicted) == {"a", "b"}
    assert abs(predicted.count("a") / 4000 - 0.5) < 0.03


def test_logistic_regression_matches_scikit_learn():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 32))
    x = np.concatenate([c + 0.8 * rng.normal(size=(5, 32)) for c in centres]).astype(np.float32)
    y = np.repeat(np.arange(5), 5)
    queries = np.concatenate([c + 0.8 * rng.normal(size=(40, 32)) for c in centres])
    weight, bias = fit_logistic_regression(
        torch.from_numpy(x), torch.from_numpy(y), 5, c=1.0, max_iter=200
    )
    ours = (torch.from_numpy(queries).float() @ weight.T + bias).argmax(-1).numpy()
    reference = SkLogisticRegression(C=1.0, max_iter=1000, tol=1e-8).fit(x, y)
    assert (ours == reference.predict(queries)).mean() >= 0.99
    ours_objective = penalised_log_loss(x, y, weight.numpy(), bias.numpy(), c=1.0)
    reference_objective = penalised_log_loss(x, y, reference.coef_, reference.intercept_, c=1.0)
    assert ours_objective == pytest.approx(reference_objective, rel=1e-4)
    assert np.abs(weight.numpy() - reference.coef_).max() < 1e-2


def penalised_log_loss(x, y, weight, bias, c):
    """sum(cross-entropy) + |W|^2 / (2c), in float64."""
    logits = x.astype(np.float64) @ weight.T.astype(np.float64) + bias
    logits -= logits.max(1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -log_probs[np.arange(len(y)), y].sum() + (weight.astype(np.float64) ** 2).sum() / (2 * c)


def test_logistic_regression_method_separates_clear_classes():
    predictor = build("logistic-regression").fit(SUPPORT, random.Random(0))
    assert predictor.predict(["far-along-a", "b2"]) == ["a", "b"]


@pytest.mark.parametrize(
    "name", ["protonet", "protonet-cosine", "nearest-neighbour", "logistic-regression"]
)
def test_fit_returns_new_predictor_and_keeps_method_stateless(name):
    method = build(name)
    first = method.fit(SUPPORT, random.Random(0))
    second = method.fit(SUPPORT[:1] + SUPPORT[2:3], random.Random(0))
    assert first is not second
    assert first.predict(["b2"]) == ["b"]
