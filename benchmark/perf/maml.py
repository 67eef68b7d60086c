"""MAML meta-training speed: the batched `torch.func` path of `baselines.optimization` against
`higher` (`innerloop_ctx`, a differentiable SGD inner optimiser) looping over the tasks, on the
same model (residual adapter over fixed embeddings and a zero-initialised head), the same data
and the same initial weights; with the largest difference between their meta-gradients."""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from baselines.meta_batch import MetaBatch
from baselines.optimization import MAML, MAMLConfig
from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import MethodContext
from benchmark.core.types import Episode, Example
from benchmark.perf.measurement import Measurement


@dataclass(frozen=True)
class MAMLComparison:
    """Meta-training steps per second (median over timed steps) and the meta-gradients' largest
    absolute difference, `torch.func` against `higher`."""

    torch_func_steps_per_s: float
    loop_steps_per_s: float
    higher_steps_per_s: float
    speedup: float
    max_gradient_difference: float


class FixedEmbeddings:
    """An encoder that looks texts up in a fixed table of embeddings (rows named `texts`)."""

    name = "fixed-embeddings"
    revision = "0"

    def __init__(self, texts: Sequence[str], table: np.ndarray) -> None:
        self.row = {text: i for i, text in enumerate(texts)}
        self.table = table.astype(np.float32)
        self.dim = table.shape[1]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self.table[[self.row[t] for t in texts]]

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        raise NotImplementedError("fixed embeddings hold sentences only")


def synthetic_episodes(
    n_way: int, k_shot: int, n_query: int, count: int, dim: int, seed: int
) -> tuple[list[Episode], FixedEmbeddings]:
    """`count` episodes of distinct classes whose unit-norm embeddings scatter around a random
    centre per class, and the encoder that holds them."""
    rng = np.random.default_rng(seed)
    episodes, texts, rows = [], [], []
    for e in range(count):
        centres = rng.standard_normal((n_way, dim))
        support, query = [], []
        for c in range(n_way):
            for i in range(k_shot + n_query):
                text = f"episode {e} class {c} example {i}"
                example = Example(text, text, f"class {c}")
                (support if i < k_shot else query).append(example)
                texts.append(text)
                rows.append(centres[c] + rng.standard_normal(dim))
        classes = tuple(f"class {c}" for c in range(n_way))
        episodes.append(Episode(classes, tuple(support), tuple(query), f"synthetic-{e}", e))
    table = np.stack(rows)
    return episodes, FixedEmbeddings(texts, table / np.linalg.norm(table, axis=1, keepdims=True))


class AdapterHead(nn.Module):
    """The learner's adapter followed by an N-way linear head, for `higher`."""

    def __init__(self, adapter: nn.Module, dim: int, n_way: int) -> None:
        super().__init__()
        self.adapter = copy.deepcopy(adapter)
        self.head = nn.Linear(dim, n_way)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.adapter(x))


def higher_meta_loss(
    model: AdapterHead, batch: MetaBatch, inner_steps: int, inner_lr: float
) -> torch.Tensor:
    """Mean query loss of the batch, task by task with `higher.innerloop_ctx` (second order, the
    head zeroed before each task)."""
    try:
        import higher
    except ImportError as error:
        raise BenchmarkError(
            "the comparison with higher needs it installed: pip install higher"
        ) from error
    losses = []
    for support, support_targets, query, query_targets in zip(*batch.tensors, strict=True):
        with torch.no_grad():
            model.head.weight.zero_()
            model.head.bias.zero_()
        inner = torch.optim.SGD(model.parameters(), lr=inner_lr)
        with higher.innerloop_ctx(model, inner, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(inner_steps):
                diffopt.step(nn.functional.cross_entropy(fmodel(support), support_targets))
            losses.append(nn.functional.cross_entropy(fmodel(query), query_targets))
    return torch.stack(losses).mean()


def time_step(step: Callable[[], object], seconds: list[float]) -> None:
    """Time one call of `step` into `seconds`."""
    start = time.perf_counter()
    step()
    seconds.append(time.perf_counter() - start)


def compare_maml_higher(
    n_way: int = 5,
    k_shot: int = 5,
    n_query: int = 15,
    meta_batch: int = 4,
    inner_steps: int = 5,
    dim: int = 384,
    rounds: int = 5,
    seed: int = 0,
) -> MAMLComparison:
    """MAML (second order, default inner learning rate and adapter) on `meta_batch` synthetic
    `n_way`-way `k_shot`-shot episodes of `dim`-dimensional embeddings: meta-gradients of the
    `torch.func` path and of `higher` from the same weights, then `rounds` alternating timed
    meta-training steps (meta-gradient and Adam step) of the `torch.func` path, our per-episode
    loop and `higher`. Raises `BenchmarkError` when `higher` is not installed."""
    episodes, encoder = synthetic_episodes(n_way, k_shot, n_query, meta_batch, dim, seed)
    config = MAMLConfig(inner_steps=inner_steps, meta_batch=meta_batch, train_seed=seed)
    learner = MAML(config, MethodContext(encoder))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)  # away from the zero init: every second-order term counts
        for parameter in learner.features.adapter.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    batch = learner.stack(episodes)
    if batch is None or not learner.low_rank(learner.inner_lrs()):
        raise BenchmarkError("the synthetic MAML batch did not take the torch.func path")
    model = AdapterHead(learner.features.adapter, dim, n_way)
    outer = torch.optim.Adam(model.adapter.parameters(), lr=config.meta_lr)

    def higher_step() -> None:
        outer.zero_grad()
        higher_meta_loss(model, batch, inner_steps, config.inner_lr).backward()
        outer.step()

    def loop_step() -> None:
        learner.optimizer.zero_grad()
        torch.stack([learner.query_loss(e) for e in episodes]).mean().backward()
        learner.optimizer.step()

    learner.optimizer.zero_grad()
    learner.meta_loss(episodes).backward()
    ours = {n: p.grad for n, p in learner.body().items()}
    higher_meta_loss(model, batch, inner_steps, config.inner_lr).backward()
    theirs = dict(model.adapter.named_parameters(prefix="adapter"))
    difference = max(float((ours[n] - p.grad).abs().max()) for n, p in theirs.items())

    seconds: dict[str, list[float]] = {"torch.func": [], "loop": [], "higher": []}
    for _ in range(rounds):
        time_step(
            lambda: float(learner.train_step(episodes, random.Random(seed))), seconds["torch.func"]
        )
        time_step(loop_step, seconds["loop"])
        time_step(higher_step, seconds["higher"])
    rate = {name: 1 / statistics.median(times) for name, times in seconds.items()}
    return MAMLComparison(
        torch_func_steps_per_s=rate["torch.func"],
        loop_steps_per_s=rate["loop"],
        higher_steps_per_s=rate["higher"],
        speedup=rate["torch.func"] / rate["higher"],
        max_gradient_difference=difference,
    )


def measure_maml() -> Measurement:
    """MAML meta-training steps/s: our torch.func path against `higher` over the tasks, on the
    CPU whatever `--device` says (the row's name says so)."""

    result = compare_maml_higher()
    return Measurement(
        "MAML steps/s on the CPU (5w-5s, meta batch 4, 5 inner steps, second order)",
        "torch.func path",
        "higher innerloop_ctx loop",
        1 / result.torch_func_steps_per_s,
        1 / result.higher_steps_per_s,
        result.speedup,
        ">= 1.5x, gradients to 1e-5",
        result.speedup >= 1.5 and result.max_gradient_difference <= 1e-5,
        f"max meta-gradient difference {result.max_gradient_difference:.1e}",
        result.max_gradient_difference <= 1e-5,
    )
