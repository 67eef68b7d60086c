"""Meta-training on the training classes, with validation on the validation classes.

A trainable method (`MethodEntry.trainable`) is a `MetaLearner`: besides `fit` (the method
protocol), it takes one outer update from a batch of training episodes and exposes its state.
`meta_train` runs the loop every such method shares: episodes from the train split, one optimiser
step per meta batch, validation every `valid_every` steps on fixed validation episodes, the best
validation state kept, curves logged, and a clear stop when the loss is not finite.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from benchmark.core.configs import ConfigError
from benchmark.core.episodes import method_rng
from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import Predictor, TagPredictor
from benchmark.core.metrics import score_episode
from benchmark.core.types import Episode, EpisodeSource, EpisodeSpec, Kind

TRAIN_SEED_BASE = 1_000_000  # training episodes use seeds far from evaluation seeds
VALID_SEED = 999_999


class TrainingDiverged(BenchmarkError, FloatingPointError):
    """The training loss became NaN or infinite; nothing is saved or scored."""


@dataclass(frozen=True)
class MetaTrainConfig:
    """Meta-training settings shared by every trainable method (fields of its config).

    `train_n_way`/`train_k_shot` of 0 mean "the N (at most the training classes) and K being
    evaluated"; `meta_episodes` of 0
    skips meta-training (the method runs from its initial state).
    """

    meta_episodes: int = 300
    meta_batch: int = 4
    meta_lr: float = 1e-3
    train_n_way: int = 0
    train_k_shot: int = 0
    train_n_query: int = 5
    valid_every: int = 50
    valid_episodes: int = 40
    train_seed: int = 0

    def __post_init__(self) -> None:
        if self.meta_batch < 1:
            raise ConfigError(f"option meta_batch={self.meta_batch}: expected at least 1")
        if self.meta_episodes < 0:
            raise ConfigError(f"option meta_episodes={self.meta_episodes}: expected at least 0")
        after = getattr(super(), "__post_init__", None)  # the next config in a combined config
        if after is not None:
            after()

    @property
    def steps(self) -> int:
        """Optimiser steps of meta-training: one per meta batch (the last one may be short)."""
        return math.ceil(self.meta_episodes / self.meta_batch) if self.meta_episodes else 0

    def valid_spec(self, evaluated: EpisodeSpec, valid_classes: int) -> EpisodeSpec:
        """Validation episodes: the evaluated N (at most the validation classes) and K."""
        return EpisodeSpec(
            min(evaluated.n_way, valid_classes), evaluated.k_shot, self.train_n_query, "valid"
        )

    def train_spec(self, evaluated: EpisodeSpec, train_classes: int) -> EpisodeSpec:
        """The spec of training episodes for a cell that evaluates `evaluated`: by default its N
        (at most the number of training classes) and K."""
        return EpisodeSpec(
            self.train_n_way or min(evaluated.n_way, train_classes),
            self.train_k_shot or evaluated.k_shot,
            self.train_n_query,
            "train",
        )


class MetaLearner(Protocol):
    """A method that can be meta-trained and saved.

    Optional: `prepare(train_source)`, called once before the first step (e.g. to size a head
    over the training classes), and `embedding_once(texts, training)`, a context in which the
    validation episodes' texts are encoded once.
    """

    def fit(self, support: Sequence[Any], rng: random.Random) -> Predictor | TagPredictor: ...

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> float | torch.Tensor:
        """One outer update from a meta batch; returns the batch's mean training loss, as a float
        or as a 0-d tensor the device may still be computing (`meta_train` samples the next
        batch before it reads the value, so sampling overlaps the device's work)."""
        ...

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint saves (the trained parameters)."""
        ...

    def load_checkpoint_state(self, state: dict[str, Any]) -> None: ...


@dataclass
class TrainResult:
    """What meta-training produced: the kept state and the curves behind it."""

    state: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    best_valid: float | None = None
    best_step: int = 0
    steps: int = 0
    train_s: float = 0.0


class CurveLogger(Protocol):
    def log(self, name: str, value: float, step: int) -> None: ...

    def close(self) -> None: ...


class NoLogger:
    """Keeps nothing (curves still go into the checkpoint's history)."""

    def log(self, name: str, value: float, step: int) -> None:
        return None

    def close(self) -> None:
        return None


class TensorBoardLogger:
    """Scalars for TensorBoard under `log_dir/<run name>`."""

    def __init__(self, log_dir: Path, run_name: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise BenchmarkError(
                "--log-dir needs TensorBoard: pip install tensorboard "
                '(or pip install -e ".[tensorboard]")'
            ) from error
        self.writer = SummaryWriter(str(log_dir / run_name))

    def log(self, name: str, value: float, step: int) -> None:
        self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()


def clone_state(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a state dict whose tensors no longer share memory with the model."""
    return {
        k: v.detach().clone()
        if isinstance(v, torch.Tensor)
        else clone_state(v)
        if isinstance(v, dict)
        else v
        for k, v in state.items()
    }


def validation_score(learner: MetaLearner, kind: Kind, episodes: Sequence[Episode]) -> float:
    """Mean score of the learner (as a method) over fixed validation episodes; a learner with
    `embedding_once(texts, training)` encodes their texts once for all of them."""
    once = getattr(learner, "embedding_once", None)
    items = [x for e in episodes for x in (*e.support, *e.query)]
    texts = [x.text for x in items] if kind == "classification" else []
    with once(texts, training=False) if once is not None else contextlib.nullcontext():
        scores = [
            score_episode(kind, learner, e, method_rng(e.seed, e.index)).metric[0] for e in episodes
        ]
    return sum(scores) / len(scores)


def meta_train(
    learner: MetaLearner,
    config: MetaTrainConfig,
    evaluated: EpisodeSpec,
    kind: Kind,
    train: EpisodeSource,
    valid: EpisodeSource | None,
    logger: CurveLogger | None = None,
    tick: Callable[[int], None] = lambda _: None,
) -> TrainResult:
    """Meta-train `learner` for a cell that evaluates `evaluated`: training episodes from `train`
    (`config.train_spec`), the best state kept on validation episodes from `valid`.

    Without a validation split (or with `valid_every` 0) the final state is kept. Raises
    TrainingDiverged at the first non-finite training loss.
    """
    logger = logger or NoLogger()
    start = time.perf_counter()
    valid_episodes: list[Episode] = []
    spec = config.train_spec(evaluated, len(train.labels()))
    if valid is not None and config.valid_every > 0 and config.valid_episodes > 0:
        valid_spec = config.valid_spec(evaluated, len(valid.labels()))
        valid.check(valid_spec, "the validation split")
        valid_episodes = valid.episodes(valid_spec, (VALID_SEED,), config.valid_episodes)
    prepare = getattr(learner, "prepare", None)  # e.g. a head over the training classes
    if prepare is not None and config.meta_episodes:
        prepare(train)
    result = TrainResult(state=clone_state(learner.checkpoint_state()))
    if valid_episodes:
        result.best_valid = validation_score(learner, kind, valid_episodes)
        result.history.append({"step": 0, "valid": result.best_valid})
        logger.log("valid/score", result.best_valid, 0)
    seed = TRAIN_SEED_BASE + config.train_seed
    steps = config.steps

    def meta_batch(step: int) -> list[Episode]:
        """Episodes of step `step`; the last batch holds what is left of `meta_episodes`."""
        first = (step - 1) * config.meta_batch
        last = min(first + config.meta_batch, config.meta_episodes)
        return [train.episode(spec, seed, i) for i in range(first, last)]

    batch = meta_batch(1)
    for step in range(1, steps + 1):
        pending = learner.train_step(batch, method_rng(seed, step))
        done = batch
        if step < steps:
            batch = meta_batch(step + 1)  # on a GPU, while it still works on this step
        loss = float(pending)
        if not math.isfinite(loss):
            raise TrainingDiverged(
                f"meta-training loss is {loss} at step {step} of {steps}; lower meta_lr "
                f"(now {config.meta_lr}) or the inner learning rate; nothing was saved"
            )
        result.history.append({"step": step, "loss": loss})
        logger.log("train/loss", loss, step)
        tick(len(done))
        if valid_episodes and (step % config.valid_every == 0 or step == steps):
            score = validation_score(learner, kind, valid_episodes)
            result.history.append({"step": step, "valid": score})
            logger.log("valid/score", score, step)
            if result.best_valid is None or score > result.best_valid:
                result.best_valid, result.best_step = score, step
                result.state = clone_state(learner.checkpoint_state())
    if not valid_episodes:
        result.state = clone_state(learner.checkpoint_state())
        result.best_step = steps
    result.steps = steps
    result.train_s = time.perf_counter() - start
    logger.close()
    learner.load_checkpoint_state(result.state)
    return result
