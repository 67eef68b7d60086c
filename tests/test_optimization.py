"""Optimisation-based meta-learners: exact meta-gradients, the Reptile, ANIL and Meta-SGD updates,
CLI runs, and real-data accuracy (MAML beating its own untrained start, paired)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import baselines.optimization  # noqa: F401 (registers the methods)
from baselines.optimization import (
    ANIL,
    MAML,
    ANILConfig,
    FirstOrderMAML,
    MAMLConfig,
    MetaSGD,
    Params,
    head,
    inner_loop,
)
from baselines.reptile import Reptile, ReptileConfig
from benchmark.cli import main
from benchmark.core.methods import MethodContext, label_index
from benchmark.core.registry import TASKS
from benchmark.core.types import Episode, EpisodeSpec
from benchmark.engine.lexical_encoder import HashingBagOfWords
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import run_sweep

METHODS = ("maml", "fomaml", "reptile", "anil", "meta-sgd")


# Meta-gradients on a tiny model (float64) -----------------------------------------------------


def tiny_problem() -> tuple[Params, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Initial parameters of a tanh layer and a 3-way head, and support/query data."""
    g = torch.Generator().manual_seed(0)
    params = {
        "body": torch.randn(4, 4, generator=g, dtype=torch.float64) * 0.5,
        "head.weight": torch.randn(3, 4, generator=g, dtype=torch.float64) * 0.5,
        "head.bias": torch.randn(3, generator=g, dtype=torch.float64) * 0.5,
    }
    xs = torch.randn(6, 4, generator=g, dtype=torch.float64)
    xq = torch.randn(9, 4, generator=g, dtype=torch.float64)
    return params, xs, torch.tensor([0, 1, 2] * 2), xq, torch.tensor([0, 1, 2] * 3)


def post_adaptation_loss(params: Params, first_order: bool) -> torch.Tensor:
    """Query loss after two inner steps on the support set, through `inner_loop`."""
    _, xs, ys, xq, yq = tiny_problem()

    def loss(p: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(head(p, torch.tanh(x @ p["body"])), y)

    lrs = dict.fromkeys(params, 0.7)
    adapted = inner_loop(lambda p: loss(p, xs, ys), params, lrs, 2, first_order)
    return loss(adapted, xq, yq)


def meta_gradient(first_order: bool) -> dict[str, torch.Tensor]:
    params = {n: p.requires_grad_() for n, p in tiny_problem()[0].items()}
    grads = torch.autograd.grad(post_adaptation_loss(params, first_order), list(params.values()))
    return dict(zip(params, grads, strict=True))


def finite_difference_gradient(eps: float = 1e-6) -> dict[str, torch.Tensor]:
    params = tiny_problem()[0]
    result = {}
    for name, value in params.items():
        grad = torch.zeros_like(value)
        for i in range(value.numel()):
            shifted = []
            for sign in (1, -1):
                moved = value.clone()
                moved.view(-1)[i] += sign * eps
                point = {n: p.requires_grad_() for n, p in {**params, name: moved}.items()}
                shifted.append(float(post_adaptation_loss(point, True).detach()))
            grad.view(-1)[i] = (shifted[0] - shifted[1]) / (2 * eps)
        result[name] = grad
    return result


def test_maml_meta_gradient_is_the_exact_gradient_of_the_post_adaptation_loss():
    exact = meta_gradient(first_order=False)
    numeric = finite_difference_gradient()
    for name in exact:
        assert torch.allclose(exact[name], numeric[name], rtol=0, atol=1e-7), name


def test_first_order_maml_drops_the_second_order_terms():
    exact = meta_gradient(first_order=False)
    first = meta_gradient(first_order=True)
    assert max(float((exact[n] - first[n]).abs().max()) for n in exact) > 0.05
    params = tiny_problem()[0]
    _, xs, ys, xq, yq = tiny_problem()
    adapted = inner_loop(
        lambda p: torch.nn.functional.cross_entropy(head(p, torch.tanh(xs @ p["body"])), ys),
        {n: p.requires_grad_() for n, p in params.items()},
        dict.fromkeys(params, 0.7),
        2,
        first_order=True,
    )
    at = {n: p.detach().requires_grad_() for n, p in adapted.items()}
    query = torch.nn.functional.cross_entropy(head(at, torch.tanh(xq @ at["body"])), yq)
    for name, grad in zip(at, torch.autograd.grad(query, list(at.values())), strict=True):
        assert torch.allclose(first[name], grad, rtol=0, atol=1e-12), name


# The learners on vendored CLINC150 with the lexical encoder -----------------------------------


@pytest.fixture(scope="module")
def context() -> MethodContext:
    return MethodContext(HashingBagOfWords(dim=256))


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    train = TASKS.get("clinc150").load(None, 1).split("train")
    return train.episodes(EpisodeSpec(5, 1, 3, "train"), (0,), 2)


def body_copy(learner: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in learner.body().items()}


def test_maml_learner_differs_from_first_order_only_by_second_order_terms(context, episodes):
    grads = []
    for method in (MAML, FirstOrderMAML):
        learner = method(MAMLConfig(adapter_hidden=8, inner_lr=2.0), context)
        learner.query_loss(episodes[0]).backward()
        grads.append({n: p.grad for n, p in learner.body().items()})
    maml, fomaml = grads
    assert set(maml) == {"adapter.down.weight", "adapter.down.bias", "adapter.up.weight",
                         "adapter.up.bias"}  # fmt: skip
    assert all(float(g.abs().max()) > 0 for g in maml.values())
    differences = [float((maml[n] - fomaml[n]).abs().max()) for n in maml]
    assert max(differences) > 1e-4


def test_reptile_moves_the_initialisation_toward_the_adapted_weights(context, episodes):
    learner = Reptile(ReptileConfig(adapter_hidden=8, meta_lr=0.25, inner_lr=2.0), context)
    before = body_copy(learner)
    adapted = [learner.adapted(e)[0] for e in episodes]
    loss = learner.train_step(episodes, random.Random(0))
    assert 0 < loss < 1.6  # below log 5: the inner loop fits each episode
    for name, theta in before.items():
        target = torch.stack([a[name] for a in adapted]).mean(0)
        expected = theta + 0.25 * (target - theta)
        assert torch.allclose(learner.body()[name], expected, rtol=0, atol=1e-7), name
    moved = [float((learner.body()[n] - before[n]).detach().abs().max()) for n in before]
    assert max(moved) > 1e-3


def test_anil_adapts_only_the_head_and_trains_the_body_in_the_outer_loop(context, episodes):
    learner = ANIL(ANILConfig(adapter_hidden=8, inner_lr=2.0), context)
    episode = episodes[0]
    names, _ = label_index(episode.support)
    start = learner.initial(learner.body(), len(names))
    adapted = learner.adapt_to(start, episode.support, names, learner.inner_lrs(), False)
    for name, value in learner.body().items():
        assert adapted[name] is value
    assert float(adapted["head.weight"].detach().abs().max()) > 0
    before = body_copy(learner)
    learner.train_step(episodes, random.Random(0))
    assert any(not torch.equal(learner.body()[n], before[n]) for n in before)

    maml = MAML(MAMLConfig(adapter_hidden=8, inner_lr=2.0), context)
    adapted = maml.adapt_to(
        maml.initial(maml.body(), len(names)), episode.support, names, maml.inner_lrs(), False
    )
    assert not torch.equal(adapted["adapter.up.weight"], maml.body()["adapter.up.weight"])


def test_meta_sgd_learns_its_inner_learning_rates(context, episodes):
    learner = MetaSGD(MAMLConfig(adapter_hidden=8, inner_lr=2.0), context)
    assert learner.lrs["head/weight"].shape == (1, 256)
    learner.query_loss(episodes[0]).backward()
    for key, lr in learner.lrs.items():
        assert lr.grad is not None and float(lr.grad.abs().max()) > 0, key
    learner.train_step(episodes, random.Random(0))
    assert float((learner.lrs["head/weight"] - 2.0).detach().abs().max()) > 1e-4
    assert "lrs.head/weight" in learner.checkpoint_state()


# End to end through the CLI -------------------------------------------------------------------

TINY = [
    "--task", "clinc150", "--method", ",".join(METHODS), "--encoder", "hashing-bow",
    "--n-way", "5", "--k-shot", "1", "--n-query", "5", "--episodes", "10", "--seeds", "1",
    "--no-progress", "--quiet",
    "--option", "meta_episodes=8", "--option", "meta_batch=2", "--option", "valid_every=2",
    "--option", "valid_episodes=4", "--option", "adapter_hidden=16", "--option", "inner_steps=2",
]  # fmt: skip


def test_every_method_runs_from_the_cli(tmp_path):
    assert main(["run", *TINY, "--out", str(tmp_path)]) == 0
    records = {
        r["method"]: r for r in map(json.loads, map(Path.read_text, tmp_path.glob("*.json")))
    }
    assert set(records) == set(METHODS)
    for method, record in records.items():
        assert record["status"] == "ok", record["error"]
        assert record["training"]["steps"] == 4, method
        assert record["method_config"]["inner_steps"] == 2
        assert 0.2 < record["mean"] <= 1.0, method
    assert records["reptile"]["method_config"]["meta_lr"] == 0.1
    assert records["maml"]["method_config"]["adapt"] == "all"


# Real data: CLINC150 from the shared data with the packaged all-MiniLM-L6-v2 ------------------


def test_every_method_is_far_above_chance_on_real_data(shared_data, tmp_path):
    sweep = Sweep(
        tasks=("clinc150",),
        methods=METHODS,
        specs=(EpisodeSpec(5, 1, 5),),
        episodes=20,
        seeds=(0,),
        encoder="all-MiniLM-L6-v2",
        options={"meta_episodes": "8", "valid_every": "0"},
    )
    result = run_sweep(sweep, RunOptions(out=tmp_path, data_dir=shared_data, progress=False))
    assert result.failed == 0
    means = {r["method"]: r["mean"] for r in result.records}
    assert set(means) == set(METHODS)
    # Measured: 0.958 (reptile) to 0.964 (maml, fomaml, meta-sgd); chance is 0.2.
    assert min(means.values()) >= 0.9, means
