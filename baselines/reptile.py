"""Reptile (Nichol et al. 2018): SGD on each training episode from the meta-learned
initialisation, then the initialisation moved part of the way toward the mean adapted weights;
first order by construction."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from baselines.meta_batch import Params, head
from baselines.optimization import GradientMetaLearner, InnerLoopConfig
from benchmark.core.configs import ConfigError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.types import Episode


@dataclass(frozen=True)
class ReptileConfig(InnerLoopConfig):
    """Reptile: the inner loop adapts everything on all of a training episode's examples, and the
    outer step moves the initialisation `meta_lr` of the way toward the mean adapted weights."""

    meta_lr: float = 0.1

    def validate(self) -> None:
        super().validate()
        if not 0 < self.meta_lr <= 1:
            raise ConfigError(f"option meta_lr={self.meta_lr}: expected in (0, 1] for Reptile")
        if self.inner_steps < 2:
            raise ConfigError(
                f"option inner_steps={self.inner_steps}: Reptile needs at least 2 (from the zero "
                "head the first step moves only the head, so the initialisation would never move)"
            )


class Reptile(GradientMetaLearner):
    """Reptile: theta <- theta + meta_lr * (mean of the adapted theta' - theta), plain SGD on the
    body (the head starts at zero in every episode, so only the body has an initialisation)."""

    def __init__(self, config: ReptileConfig, context: MethodContext) -> None:
        super().__init__(config, context)
        self.first_order = True

    def adapted(self, episode: Episode) -> tuple[Params, float]:
        """The body after the inner loop on all of `episode`'s examples, and their loss there."""
        examples = [*episode.support, *episode.query]
        names, _ = label_index(examples)
        body = {n: p.detach().requires_grad_() for n, p in self.body().items()}
        params = self.adapt_to(
            self.initial(body, len(names)), examples, names, self.inner_lrs(), True
        )
        params = {n: p.detach() for n, p in params.items()}
        with torch.no_grad():
            features = self.embed(params, [e.text for e in examples])
            loss = nn.functional.cross_entropy(
                head(params, features), self.targets(names, examples)
            )
        return {n: params[n] for n in body}, float(loss)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> float:
        self.train()
        adapted, losses = zip(*(self.adapted(e) for e in episodes), strict=True)
        with torch.no_grad():
            for name, parameter in self.body().items():
                mean = torch.stack([a[name] for a in adapted]).mean(0)
                parameter.add_(self.config.meta_lr * (mean - parameter))
        return sum(losses) / len(losses)


METHODS.add(
    "reptile",
    MethodEntry(
        "Reptile: SGD on each training episode, the initialisation moved meta_lr of the way "
        "toward the mean adapted weights (Nichol et al. 2018)",
        ReptileConfig(),
        Reptile,
        trainable=True,
    ),
)
