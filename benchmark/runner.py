"""Expand a sweep into cells, check them all, run each, and store one record per cell."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.encoders import (
    DEFAULT_ENCODER,
    CachedEncoder,
    EncoderOptions,
    build_encoder,
    resolve_device,
    synchronize,
)
from benchmark.environment import git_commit, package_versions, peak_memory_mb, reset_peak_memory
from benchmark.methods import MethodContext, MethodEntry
from benchmark.metrics import accuracy
from benchmark.registry import METHODS, TASKS
from benchmark.sampling import (
    SAMPLER_VERSION,
    Pool,
    check_spec,
    combined_fingerprint,
    method_rng,
    sample_episode,
)
from benchmark.stats import mean_ci
from benchmark.store import SCHEMA_VERSION, Record, cell_key, finished_record, write_record
from benchmark.types import Episode, EpisodeSpec, Task


@dataclass(frozen=True)
class Sweep:
    """What to run: every task x method x spec, each over `seeds` x `episodes` episodes."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    specs: tuple[EpisodeSpec, ...]
    episodes: int
    seeds: tuple[int, ...]
    encoder: str = DEFAULT_ENCODER
    split_id: int = 1


@dataclass(frozen=True)
class RunOptions:
    """How to run it."""

    out: Path
    data_dir: Path | None = None
    device: str = "cpu"
    batch_size: int = 64
    force: bool = False
    progress: bool = True


@dataclass(frozen=True)
class Cell:
    """One unit of work: a task split, a method and a spec, over all seeds of the sweep."""

    task: Task
    pool: Pool
    method: str
    entry: MethodEntry
    spec: EpisodeSpec
    identity: Record


@dataclass
class SweepResult:
    """Records of the sweep's cells (reused ones included) and what happened to each."""

    records: list[Record] = field(default_factory=list)
    ran: int = 0
    reused: int = 0
    failed: int = 0


def load_tasks(names: Sequence[str], data_dir: Path | None, split_id: int) -> dict[str, Task]:
    """Load each named task once; unknown names fail with suggestions."""
    entries = {name: TASKS.get(name) for name in names}
    return {name: entry.load(data_dir, split_id) for name, entry in entries.items()}


def plan(sweep: Sweep, options: RunOptions) -> list[Cell]:
    """All cells of the sweep, after checking every name and spec; nothing is encoded yet."""
    if sweep.episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {sweep.episodes}")
    if not sweep.seeds:
        raise ValueError("at least one seed is needed")
    methods = {name: METHODS.get(name) for name in sweep.methods}
    tasks = load_tasks(sweep.tasks, options.data_dir, sweep.split_id)
    cells: list[Cell] = []
    for task_name, task in tasks.items():
        for spec in sweep.specs:
            pool = task.pool(spec.split)
            check_spec(pool, spec, f"split {spec.split!r} of {task_name} ({task.split_name})")
            for method_name, entry in methods.items():
                identity = _identity(task, method_name, entry, spec, sweep)
                cells.append(Cell(task, pool, method_name, entry, spec, identity))
    return cells


def _identity(
    task: Task, method: str, entry: MethodEntry, spec: EpisodeSpec, sweep: Sweep
) -> Record:
    return {
        "task": task.card.name,
        "task_version": task.card.version,
        "class_split": task.split_name,
        "eval_split": spec.split,
        "data_sha256": task.data_sha256,
        "method": method,
        "method_config": entry.config_dict(method),
        "encoder": sweep.encoder if entry.needs_encoder else None,
        "n_way": spec.n_way,
        "k_shot": spec.k_shot,
        "n_query": spec.n_query,
        "episodes_per_seed": sweep.episodes,
        "seeds": list(sweep.seeds),
        "sampler_version": SAMPLER_VERSION,
    }


def run_sweep(sweep: Sweep, options: RunOptions) -> SweepResult:
    """Run every cell not already finished in `options.out`; a failing cell is stored as failed."""
    cells = plan(sweep, options)
    result = SweepResult()
    todo: list[Cell] = []
    for cell in cells:
        done = None if options.force else finished_record(options.out, cell.identity)
        if done is not None:
            result.records.append(done)
            result.reused += 1
        else:
            todo.append(cell)
    if not todo:
        return result
    device = resolve_device(options.device)
    encoder = None
    if any(cell.entry.needs_encoder for cell in todo):
        encoder = CachedEncoder(
            build_encoder(
                sweep.encoder, EncoderOptions(device, options.batch_size, options.progress)
            )
        )
    context = MethodContext(encoder=encoder, device=device)
    run_context = {"versions": package_versions(), "git_commit": git_commit(), "device": device}
    total = len(todo) * sweep.episodes * len(sweep.seeds)
    with tqdm(total=total, unit="episode", disable=not options.progress) as bar:
        for cell in todo:
            bar.set_description(f"{cell.task.card.name} {cell.method} {cell.spec.label}")
            record = _run_or_fail(cell, sweep, context, bar.update)
            record.update(run_context)
            write_record(options.out, record)
            result.records.append(record)
            result.ran += 1
            result.failed += record["status"] != "ok"
    return result


def _run_or_fail(
    cell: Cell, sweep: Sweep, context: MethodContext, tick: Callable[[int], None]
) -> Record:
    uses_encoder = context.encoder is not None and cell.entry.needs_encoder
    record: Record = {
        "schema_version": SCHEMA_VERSION,
        **cell.identity,
        "key": cell_key(cell.identity),
        "encoder_revision": context.encoder.revision if uses_encoder else None,
        "metric": cell.task.card.metric,
        "n_episodes": sweep.episodes * len(sweep.seeds),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        record.update(run_cell(cell, sweep, context, tick))
        record.update(status="ok", error=None)
    except Exception:
        record.update(status="failed", error=traceback.format_exc())
    return record


def run_cell(
    cell: Cell, sweep: Sweep, context: MethodContext, tick: Callable[[int], None]
) -> Record:
    """Scores, summary and throughput of one cell; raises if the method fails."""
    episodes = [
        sample_episode(cell.pool, cell.spec, seed, index)
        for seed in sweep.seeds
        for index in range(sweep.episodes)
    ]
    reset_peak_memory(context.device)
    start = time.perf_counter()
    if cell.entry.needs_encoder and context.encoder is not None:
        context.encoder.encode(sorted(_unique_texts(episodes), key=len))
        synchronize(context.device)
    encoder_s = time.perf_counter() - start
    method = cell.entry.build(cell.entry.config, context)
    scores: list[float] = []
    for episode in episodes:
        predictor = method.fit(episode.support, method_rng(episode.seed, episode.index))
        predicted = predictor.predict([e.text for e in episode.query])
        scores.append(accuracy(predicted, [e.label for e in episode.query]))
        tick(1)
    synchronize(context.device)
    wall_s = time.perf_counter() - start
    summary = mean_ci(scores)
    examples = sum(len(e.support) + len(e.query) for e in episodes)
    per_seed = [scores[i : i + sweep.episodes] for i in range(0, len(scores), sweep.episodes)]
    return {
        "mean": summary.mean,
        "ci95": summary.ci95,
        "per_episode": scores,
        "per_seed_mean": [sum(s) / len(s) for s in per_seed],
        "episodes_fingerprint": combined_fingerprint(episodes),
        "throughput": {
            "wall_s": wall_s,
            "encoder_s": encoder_s,
            "method_s": wall_s - encoder_s,
            "episodes_per_s": len(episodes) / wall_s,
            "examples_per_s": examples / wall_s,
        },
        "peak_memory_mb": peak_memory_mb(context.device),
    }


def _unique_texts(episodes: Sequence[Episode]) -> set[str]:
    return {e.text for episode in episodes for e in (*episode.support, *episode.query)}
