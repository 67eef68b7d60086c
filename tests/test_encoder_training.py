"""Encoder training inside meta-training, on a tiny random BERT: which weights move, the one-pass
meta-batch forward, second-order MAML through unfrozen layers, the learning-rate schedule, and
evaluation with the trained encoder (each test text encoded once, checkpoints reload exactly)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from baselines.metatrained import MetaPrototypicalConfig, MetaPrototypicalNetwork
from baselines.optimization import MAML, MAMLConfig
from benchmark.cli import main
from benchmark.core.methods import MethodContext
from benchmark.core.registry import TASKS
from benchmark.core.types import EncoderOptions, EpisodeSpec
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.outer_optimizer import warmup_then_decay
from benchmark.engine.training import meta_train
from benchmark.engine.transformer_encoder import TransformerEncoder


@pytest.fixture(scope="module")
def clinc():
    return TASKS.get("clinc150").load(None, 1)


def context_of(tiny_bert) -> MethodContext:
    return MethodContext(CachedEncoder(TransformerEncoder(tiny_bert, EncoderOptions("cpu"))))


TRAIN_SPEC = EpisodeSpec(3, 2, 2, "train")


def episodes(task, count: int, spec: EpisodeSpec = TRAIN_SPEC) -> list:
    return [task.split("train").episode(spec, 7, i) for i in range(count)]


def test_unfrozen_weights_train_and_frozen_ones_stay_bit_identical(tiny_bert, clinc):
    spec = EpisodeSpec(3, 1, 2)
    for layers in ("all", 0):
        context = context_of(tiny_bert)
        base = {k: v.clone() for k, v in context.encoder.inner.model.state_dict().items()}
        config = MetaPrototypicalConfig(
            unfreeze_layers=layers, adapter_hidden=8, meta_episodes=4, meta_batch=2,
            valid_every=0, train_n_query=2, encoder_lr=1e-3,
        )  # fmt: skip
        learner = MetaPrototypicalNetwork(config, context)
        meta_train(learner, config, spec, "classification", clinc.split("train"), None)
        after = context.encoder.inner.model.state_dict()
        assert all(torch.equal(base[k], after[k]) for k in base)  # the shared encoder: never
        if layers == "all":
            tuned = learner.features.transformer.model.state_dict()
            moved = [k for k in base if not torch.equal(base[k], tuned[k])]
            # every layer and the embeddings moved (the pooler gets no gradient)
            assert any("embeddings" in k for k in moved)
            assert {k.split(".")[2] for k in moved if k.startswith("encoder.layer.")} == {"0", "1"}
            assert learner.optimizer.tunes_encoder
        else:
            assert learner.features.transformer is None


def test_the_one_pass_meta_batch_forward_gives_the_per_episode_loss_and_gradients(tiny_bert, clinc):
    config = MetaPrototypicalConfig(unfreeze_layers="all", adapter_hidden=8)
    learner = MetaPrototypicalNetwork(config, context_of(tiny_bert)).eval()  # no dropout
    batch = episodes(clinc, 4)
    calls = []
    learner.features.transformer.register_forward_hook(lambda *_: calls.append(1))

    def loss_and_grads(once: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        learner.zero_grad()
        calls.clear()
        texts = [x.text for e in batch for x in (*e.support, *e.query)]
        with learner.features.embedded_once(texts) if once else contextlib_null():
            loss = torch.stack([learner.episode_loss(e) for e in batch]).mean()
        loss.backward()
        grads = [p.grad.clone() for p in learner.parameters() if p.grad is not None]
        return loss.detach(), grads

    looped, looped_grads = loss_and_grads(False)
    assert len(calls) == 2 * len(batch)  # support, then query, of every episode
    once, once_grads = loss_and_grads(True)
    assert len(calls) == 1
    assert torch.allclose(once, looped, atol=1e-5)
    assert len(once_grads) == len(looped_grads) > 10
    assert all(
        torch.allclose(a, b, atol=1e-5) for a, b in zip(once_grads, looped_grads, strict=True)
    )


def contextlib_null():
    import contextlib

    return contextlib.nullcontext()


def test_second_order_maml_through_unfrozen_layers_matches_finite_differences(tiny_bert, clinc):
    """d(query loss after the inner loop)/d(encoder weights), along a random direction, against
    central differences in float64; the first-order gradient misses it (so the test can fail)."""
    torch.manual_seed(0)
    config = MAMLConfig(unfreeze_layers=1, adapter_hidden=4, inner_steps=2, adapt="all",
                        inner_lr=0.5, encoder_inner_lr=0.5)  # fmt: skip
    learner = MAML(config, context_of(tiny_bert)).double().eval()
    (episode,) = episodes(clinc, 1, EpisodeSpec(2, 1, 1, "train"))
    weights = [p for n, p in learner.features.named_parameters() if n.startswith("transformer.")]
    weights = [p for p in weights if p.requires_grad]
    direction = [torch.randn_like(p) for p in weights]

    def loss() -> torch.Tensor:
        return learner.query_loss(episode)

    (exact := loss()).backward()
    analytic = sum((p.grad * d).sum() for p, d in zip(weights, direction, strict=True))
    epsilon = 1e-5

    def moved(step: float) -> torch.Tensor:
        with torch.no_grad():
            for p, d in zip(weights, direction, strict=True):
                p.add_(step * d)
        value = loss().detach()  # the inner loop needs autograd, so not under no_grad
        with torch.no_grad():
            for p, d in zip(weights, direction, strict=True):
                p.sub_(step * d)
        return value

    numeric = (moved(epsilon) - moved(-epsilon)) / (2 * epsilon)
    assert exact.dtype == torch.float64
    assert abs(float(analytic - numeric)) <= 1e-6 * max(1.0, abs(float(numeric)))
    learner.zero_grad()
    learner.first_order = True
    loss().backward()
    first = sum((p.grad * d).sum() for p, d in zip(weights, direction, strict=True))
    assert abs(float(first - numeric)) > 100 * abs(float(analytic - numeric))


def test_encoder_learning_rates_warm_up_then_decay_and_gradients_are_clipped(tiny_bert, clinc):
    assert [round(warmup_then_decay(s, 10, 0.2), 3) for s in range(10)] == [
        0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125,
    ]  # fmt: skip
    config = MetaPrototypicalConfig(unfreeze_layers=1, adapter_hidden=8, meta_episodes=10,
                                    meta_batch=1, encoder_lr=1e-4, meta_lr=1e-2, warmup=0.2,
                                    max_grad_norm=1e-3)  # fmt: skip
    learner = MetaPrototypicalNetwork(config, context_of(tiny_bert))
    assert learner.optimizer.rates() == pytest.approx([0.5e-2, 0.5e-4])  # step 1 of 2 warm-up
    before = [p.detach().clone() for p in learner.optimizer.parameters]
    learner.train_step(episodes(clinc, 1), None)
    assert learner.optimizer.rates() == pytest.approx([1e-2, 1e-4])
    grads = [p.grad for p in learner.optimizer.parameters if p.grad is not None]
    assert float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) <= 1.001e-3
    assert any(
        not torch.equal(a, p) for a, p in zip(before, learner.optimizer.parameters, strict=True)
    )
    frozen = MetaPrototypicalNetwork(dataclasses.replace(config, unfreeze_layers=0),
                                     context_of(tiny_bert))  # fmt: skip
    assert frozen.optimizer.rates() == [1e-2] and frozen.optimizer.schedule is None


def run(tiny_bert, out, *extra: str) -> int:
    return main([
        "run", "--task", "clinc150", "--method", "protonet-meta", "--encoder", str(tiny_bert),
        "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "4", "--seeds", "1",
        "--no-progress", "--quiet", "--out", str(out), "--option", "unfreeze_layers=all",
        "--option", "meta_episodes=4", "--option", "meta_batch=2", "--option", "valid_every=1",
        "--option", "valid_episodes=2", "--option", "adapter_hidden=8", *extra,
    ])  # fmt: skip


def test_evaluation_encodes_each_unique_test_text_once_with_the_trained_encoder(
    tiny_bert, clinc, tmp_path
):
    assert run(tiny_bert, tmp_path / "a") == 0
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "a").glob("*.json")]
    assert record["status"] == "ok", record["error"]
    spec = EpisodeSpec(3, 1, 2)
    cell_episodes = clinc.split("test").episodes(spec, (0,), 4)
    unique = {x.text for e in cell_episodes for x in (*e.support, *e.query)}
    assert record["training"]["eval_encoded"] == len(unique)  # each once, never per episode
    assert record["training"]["eval_cache_hits"] == 0
    # Again into another folder: the checkpoint is reused and the trained vectors are on disk.
    checkpoint = record["training"]["checkpoint"]
    assert run(tiny_bert, tmp_path / "b", "--checkpoint", checkpoint) == 0
    (again,) = [json.loads(p.read_text()) for p in (tmp_path / "b").glob("*.json")]
    assert again["training"]["reused"] and again["training"]["eval_encoded"] == 0
    assert again["training"]["eval_cache_hits"] == len(unique)
    assert again["per_episode"] == record["per_episode"]  # the checkpoint reloads exactly
    # and without the disk cache, the reloaded weights encode the same vectors again
    assert run(tiny_bert, tmp_path / "c", "--checkpoint", checkpoint, "--no-cache") == 0
    (fresh,) = [json.loads(p.read_text()) for p in (tmp_path / "c").glob("*.json")]
    assert fresh["training"]["eval_encoded"] == len(unique)
    assert fresh["per_episode"] == record["per_episode"]
