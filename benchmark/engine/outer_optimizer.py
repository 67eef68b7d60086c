"""The outer optimiser of trained methods: Adam with one learning rate for the encoder's
unfrozen weights and one for the method's own parameters.

While the encoder trains, both rates follow a linear warm-up over the first `warmup` fraction of
the steps and a linear decay to zero after it, and the gradient is clipped to `max_grad_norm`
(the usual recipe for fine-tuning a pretrained transformer). Over frozen embeddings the method's
rate stays constant and nothing is clipped, as before encoder training existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from benchmark.core.configs import ConfigError


@dataclass(frozen=True)
class EncoderTraining:
    """How the unfrozen encoder trains (fields of a trainable method's config)."""

    encoder_lr: float = 3e-5
    warmup: float = 0.1
    max_grad_norm: float = 1.0
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.encoder_lr <= 0:
            raise ConfigError(f"option encoder_lr={self.encoder_lr}: expected > 0")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"option warmup={self.warmup}: expected in [0, 1)")
        if self.max_grad_norm < 0:
            raise ConfigError(f"option max_grad_norm={self.max_grad_norm}: expected >= 0 (0: off)")
        after = getattr(super(), "__post_init__", None)  # the next config in a combined config
        if after is not None:
            after()


def warmup_then_decay(step: int, steps: int, warmup: float) -> float:
    """The learning-rate factor after `step` of `steps` optimiser steps: linear from 1/w up to 1
    over the first w = ceil(warmup * steps) steps, then linear down to 0 at `steps`."""
    warm = max(1, round(warmup * steps)) if warmup > 0 else 0
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (steps - step) / max(1, steps - warm))


class OuterOptimizer:
    """Adam over `own` parameters at `lr` and `encoder` parameters at `training.encoder_lr`;
    `steps` is the number of optimiser steps meta-training will take."""

    def __init__(
        self,
        own: Iterable[torch.nn.Parameter],
        encoder: Iterable[torch.nn.Parameter],
        lr: float,
        training: EncoderTraining,
        steps: int,
    ) -> None:
        own, encoder = list(own), list(encoder)
        groups = [{"params": own, "lr": lr}] if own else []
        if encoder:
            groups.append({"params": encoder, "lr": training.encoder_lr})
        if not groups:
            raise ConfigError(
                "nothing to meta-train: with adapter_hidden=0 and unfreeze_layers=0 the method "
                "has no meta-learned parameters; set one of them"
            )
        self.parameters: Sequence[torch.nn.Parameter] = [*own, *encoder]
        self.optimizer = torch.optim.Adam(groups)
        self.tunes_encoder = bool(encoder)
        self.max_grad_norm = training.max_grad_norm if encoder else 0.0
        self.schedule = None
        if encoder and steps > 0:
            self.schedule = torch.optim.lr_scheduler.LambdaLR(
                self.optimizer, lambda step: warmup_then_decay(step, steps, training.warmup)
            )

    def zero_grad(self) -> None:
        self.optimizer.zero_grad()

    def step(self) -> None:
        """Clip (when the encoder trains), step, and advance the schedule."""
        if self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters, self.max_grad_norm)
        self.optimizer.step()
        if self.schedule is not None:
            self.schedule.step()

    def rates(self) -> list[float]:
        """The current learning rate of each group (own first)."""
        return [group["lr"] for group in self.optimizer.param_groups]
