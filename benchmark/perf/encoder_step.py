"""Meta-training speed with the encoder unfrozen: one meta batch's unique support and query
texts through the encoder in one pass, packed into shared rows without padding
(`TextFeatures.embedded_once`, `benchmark.engine.packing`), against a padded forward per
episode's support and query set, on the same CLINC150 training episodes, with the same loss and
gradients."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from baselines.metatrained import MetaPrototypicalConfig, MetaPrototypicalNetwork
from benchmark.core.methods import MethodContext
from benchmark.core.registry import TASKS
from benchmark.core.types import EncoderOptions, Episode, EpisodeSpec
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.devices import synchronize
from benchmark.engine.encoders import DEFAULT_ENCODER, build_encoder
from benchmark.perf.episodes import best_of
from benchmark.perf.measurement import Measurement

STEP_SPEC = EpisodeSpec(5, 5, 5, "train")
META_BATCH = 4


def step(
    learner: MetaPrototypicalNetwork, batch: Sequence[Episode], once: bool
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One meta-gradient of the batch's mean query loss: the loss and every parameter's grad."""
    learner.zero_grad()
    texts = [x.text for e in batch for x in (*e.support, *e.query)]
    with learner.features.embedded_once(texts) if once else contextlib.nullcontext():
        loss = torch.stack([learner.episode_loss(e) for e in batch]).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in learner.parameters() if p.grad is not None]


def measure_encoder_step(device: str, repeats: int = 3) -> Measurement:
    """The row: protonet-meta with every encoder layer unfrozen (dropout off, so that both ways
    compute the same function), 5-way 5-shot with 5 queries, a meta batch of 4."""
    task = TASKS.get("clinc150").load(None, 1)
    encoder = CachedEncoder(build_encoder(DEFAULT_ENCODER, EncoderOptions(device)))
    config = MetaPrototypicalConfig(unfreeze_layers="all")
    learner = MetaPrototypicalNetwork(config, MethodContext(encoder, device)).eval()
    batch = [task.split("train").episode(STEP_SPEC, 0, i) for i in range(META_BATCH)]

    def timed_step(once: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        learner.features.transformer.pack = once  # the loop side pads each set, as usual
        result = step(learner, batch, once)
        synchronize(device)  # CUDA runs the backward asynchronously
        return result

    timed_step(True)  # warm-up: weights loaded, kernels chosen
    (theirs, theirs_grads), loop_s = best_of(repeats, lambda: timed_step(False))
    (ours, ours_grads), ours_s = best_of(repeats, lambda: timed_step(True))
    gap = max(float((a - b).abs().max()) for a, b in zip(ours_grads, theirs_grads, strict=True))
    gap = max(gap, float((ours - theirs).abs()))
    ratio = loop_s / ours_s
    return Measurement(
        "meta-training step, encoder unfrozen (protonet-meta, 5w-5s-5q, meta batch 4)",
        "one packed pass per meta batch",
        "a padded forward per episode's support and query",
        ours_s,
        loop_s,
        ratio,
        ">= 1.5x, loss and gradients to 1e-5",
        ratio >= 1.5 and gap <= 1e-5,
        f"max loss/gradient difference {gap:.1e}",
        gap <= 1e-5,
    )
