"""A performance measurement: ours against the naive way or a peer library in the same run,
its target and correctness check, and the `perf.json` record."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.engine.devices import synchronize
from benchmark.engine.store import write_json_atomically


@dataclass(frozen=True)
class Measurement:
    """One row: our time and the compared time (seconds), the ratio the target reads, and the
    correctness check done on the same run."""

    name: str
    ours: str
    compared_with: str
    ours_s: float
    theirs_s: float
    ratio: float  # how many times better ours is (theirs / ours, or ours / theirs for a cap)
    target: str
    met: bool
    correctness: str
    correct: bool


def timed(run: Callable[[], Any], device: str) -> tuple[Any, float]:
    """`run()` and its wall-clock seconds, the device synchronised at both ends."""
    synchronize(device)
    start = time.perf_counter()
    result = run()
    synchronize(device)
    return result, time.perf_counter() - start


def perf_record(measurements: list[Measurement], device: str, threads: int) -> dict[str, Any]:
    """What `perf` writes: every row, where and how it was measured."""
    return {
        "kind": "perf",
        "device": device,
        "torch_threads": threads,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "measurements": [asdict(m) for m in measurements],
    }


def write_record(record: dict[str, Any], out: Path) -> Path:
    """Write the perf record atomically as `out/perf.json`."""
    path = out / "perf.json"
    write_json_atomically(path, record)
    return path
