"""The batched `torch.func` meta-batch path: the same meta-gradients as the per-episode loop for
MAML (second order), first-order MAML, ANIL and Meta-SGD, and as `higher` for MAML."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from baselines.optimization import (
    ANIL,
    MAML,
    ANILConfig,
    FirstOrderMAML,
    GradientMetaLearner,
    MAMLConfig,
    MetaSGD,
)
from benchmark.core.methods import MethodContext
from benchmark.core.registry import TASKS
from benchmark.core.types import Episode, EpisodeSpec
from benchmark.engine.lexical_encoder import HashingBagOfWords
from benchmark.perf.maml import compare_maml_higher

LEARNERS = {
    "maml": (MAML, MAMLConfig),
    "fomaml": (FirstOrderMAML, MAMLConfig),
    "anil": (ANIL, ANILConfig),
    "meta-sgd": (MetaSGD, MAMLConfig),
}


@pytest.fixture(scope="module")
def context() -> MethodContext:
    return MethodContext(HashingBagOfWords(dim=128))


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    train = TASKS.get("clinc150").load(None, 1).split("train")
    return train.episodes(EpisodeSpec(5, 2, 3, "train"), (0,), 4)


def learner(name: str, context: MethodContext) -> GradientMetaLearner:
    """A learner away from its zero-initialised adapter, so that every gradient term counts."""
    method, config = LEARNERS[name]
    built = method(config(adapter_hidden=16, inner_lr=2.0, inner_steps=3), context)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        for parameter in built.features.adapter.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return built


def meta_gradient(learner: GradientMetaLearner, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    learner.optimizer.zero_grad()
    loss.backward()
    return {n: p.grad.clone() for n, p in learner.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", LEARNERS)
def test_the_vmapped_meta_batch_has_the_loops_meta_gradients(name, context, episodes):
    model = learner(name, context)
    assert model.stack(episodes) is not None
    assert model.low_rank(model.inner_lrs()) == (name in ("maml", "fomaml"))
    batched = model.meta_loss(episodes)
    looped = torch.stack([model.query_loss(e) for e in episodes]).mean()
    assert torch.allclose(batched, looped, rtol=0, atol=1e-6)
    fast, reference = meta_gradient(model, batched), meta_gradient(model, looped)
    assert set(fast) == set(reference) and len(fast) >= 4
    for key, value in reference.items():
        assert float(value.abs().max()) > 0, key
        assert torch.allclose(fast[key], value, rtol=0, atol=1e-6), key


def test_episodes_of_different_shapes_take_the_loop(context, episodes):
    model = learner("maml", context)
    ragged = [*episodes[:2], dataclasses.replace(episodes[2], query=episodes[2].query[:-1])]
    assert model.stack(ragged) is None
    looped = torch.stack([model.query_loss(e) for e in ragged]).mean()
    assert torch.equal(model.meta_loss(ragged), looped)


def test_torch_func_and_higher_give_the_same_maml_meta_gradients():
    pytest.importorskip("higher")
    result = compare_maml_higher(n_query=5, rounds=1)
    assert result.max_gradient_difference <= 1e-5
    assert min(result.torch_func_steps_per_s, result.higher_steps_per_s) > 0
