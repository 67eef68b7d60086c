"""Optional experiment tracking: each cell's result (mean, 95% CI, episodes/s, wall seconds) is
logged to TensorBoard (`--tensorboard DIR`) and/or Weights & Biases (`--wandb`) as its record is
written. Both are imported only when asked for."""

from __future__ import annotations

import netrc
import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from benchmark.core.errors import BenchmarkError
from benchmark.engine.store import Record, spec_label

WANDB_PROJECT = "fewshot-bench"


class TrackingError(BenchmarkError):
    """A tracker that was asked for but cannot be used."""


def cell_name(record: Record) -> str:
    """`<task>/<method>/<spec>`: one cell's prefix in a tracker."""
    return f"{record['task']}/{record['method']}/{spec_label(record)}"


def cell_metrics(record: Record) -> dict[str, float]:
    """What is logged for a cell: mean, ci95, episodes/s, wall s (ok cells); failed = 1 else."""
    if record["status"] != "ok":
        return {"failed": 1.0}
    throughput = record["throughput"]
    return {
        "mean": record["mean"],
        "ci95": record["ci95"],
        "episodes_per_s": throughput["episodes_per_s"],
        "wall_s": throughput["wall_s"],
    }


class Tracker(Protocol):
    """Receives each record as it is written; `step` counts the records of this run."""

    def log(self, record: Record, step: int) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """Scalars `<task>/<method>/<spec>/<metric>` in one TensorBoard run folder."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise TrackingError(
                "--tensorboard needs TensorBoard: pip install tensorboard "
                '(or pip install -e ".[tensorboard]")'
            ) from error
        self.writer = SummaryWriter(str(log_dir))

    def log(self, record: Record, step: int) -> None:
        name = cell_name(record)
        for metric, value in cell_metrics(record).items():
            self.writer.add_scalar(f"{name}/{metric}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def wandb_mode() -> str | None:
    """None (wandb decides) when `WANDB_MODE` is set or an API key is configured (the
    `WANDB_API_KEY` variable or a `wandb login` in ~/.netrc); else "offline", which needs no
    account (`wandb sync` uploads the run later)."""
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return None
    try:
        logged_in = netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    return None if logged_in else "offline"


class WandbTracker:
    """One W&B run per sweep: per-cell metrics as they come, and a table of all cells at the end.

    The project is `$WANDB_PROJECT`, else fewshot-bench; run files go under `directory`.
    """

    COLUMNS = ("task", "method", "spec", "status", "mean", "ci95", "episodes_per_s", "wall_s")

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        try:
            import wandb
        except ImportError as error:
            raise TrackingError(
                "--wandb needs Weights & Biases, which is not installed: pip install "
                "'fewshot-bench[wandb]' (or: pip install wandb)"
            ) from error
        self._wandb = wandb
        directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", WANDB_PROJECT),
            dir=str(directory),
            mode=wandb_mode(),
            config=config,
            job_type="sweep",
        )
        self.rows: list[list[Any]] = []

    def log(self, record: Record, step: int) -> None:
        name = cell_name(record)
        metrics = cell_metrics(record)
        self.run.log({f"{name}/{metric}": value for metric, value in metrics.items()}, step=step)
        row = [record["task"], record["method"], spec_label(record), record["status"]]
        self.rows.append(row + [metrics.get(column) for column in self.COLUMNS[4:]])

    def close(self) -> None:
        self.run.log({"cells": self._wandb.Table(columns=list(self.COLUMNS), data=self.rows)})
        self.run.finish()


class Trackers(AbstractContextManager["Trackers"]):
    """All trackers of a run (possibly none), closed together."""

    def __init__(self, trackers: Sequence[Tracker] = ()) -> None:
        self.trackers = list(trackers)
        self.step = 0

    def log(self, record: Record) -> None:
        """Log one record to every tracker."""
        for tracker in self.trackers:
            tracker.log(record, self.step)
        self.step += 1

    def __exit__(self, *exc: object) -> None:
        for tracker in self.trackers:
            tracker.close()


def open_trackers(
    tensorboard: Path | None, wandb: bool, out: Path, config: dict[str, Any]
) -> Trackers:
    """The trackers asked for: TensorBoard scalars in `tensorboard`, a W&B run under `out`."""
    trackers: list[Tracker] = []
    if tensorboard is not None:
        trackers.append(TensorBoardTracker(tensorboard))
    if wandb:
        trackers.append(WandbTracker(out, config))
    return Trackers(trackers)
