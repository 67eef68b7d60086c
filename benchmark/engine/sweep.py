"""Running a planned sweep: reuse stored cells, encode the union of all texts once, run the
rest here or on a backend, and write each record as soon as its cell completes."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from benchmark.core.errors import BenchmarkError, SpecError
from benchmark.core.methods import METHODS, MethodContext, resolve_method
from benchmark.core.types import EncoderOptions, Episode, Task
from benchmark.engine import encoders
from benchmark.engine.backends import Backend, available_cpus, make_backend
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.cell import cache_counts, run_or_fail
from benchmark.engine.checkpoints import (
    checkpoint_path,
)
from benchmark.engine.devices import resolve_device, synchronize
from benchmark.engine.embedding_cache import EmbeddingCache, EmbeddingCacheError, cache_dir
from benchmark.engine.environment import git_commit, package_versions
from benchmark.engine.planning import Cell, RunOptions, Sweep, plan
from benchmark.engine.store import Record, cell_key, stored_record, write_record
from benchmark.engine.tracking import open_trackers
from benchmark.engine.trained import checkpoint_identity, prepare_trained

POOL_AFTER_S = 20.0  # automatic workers: use a pool once the rest of a sweep looks this long


class EpisodeSets:
    """Each cell's evaluation episodes, sampled once per sweep: cells of one source, spec and
    seeds (every method of a task) share one list."""

    def __init__(self) -> None:
        self._sets: dict[tuple[object, ...], list[Episode]] = {}

    def of(self, cell: Cell) -> list[Episode]:
        key = (id(cell.source), cell.spec, cell.seeds, cell.episodes_per_seed)
        if key not in self._sets:
            self._sets[key] = cell.source.episodes(cell.spec, cell.seeds, cell.episodes_per_seed)
        return self._sets[key]


@dataclass
class SweepResult:
    """Records of the sweep's cells (stored ones included, in plan order) and what happened."""

    records: list[Record] = field(default_factory=list)
    ran: int = 0
    reused: int = 0  # finished cells found in the store
    failed: int = 0  # cells run now that failed
    kept_failed: int = 0  # failed cells found in the store and not rerun
    pooled: int = 0  # cells run by worker processes (the rest ran in this process)
    workers: int = 0  # worker processes (or Ray CPUs) used; 0: none

    def add(self, record: Record) -> None:
        """Count a record of a cell run now."""
        self.records.append(record)
        self.ran += 1
        self.failed += record["status"] != "ok"


def run_sweep(sweep: Sweep, options: RunOptions, extra_tasks: Sequence[Task] = ()) -> SweepResult:
    """Run every cell that `options.out` does not hold yet; a failing cell is stored as failed.

    Stored cells are reused (failed ones too, unless `retry_failed`; nothing with `force`); a
    corrupt record file stops the run before any compute. The texts of all cells are encoded
    once, here, into the embedding cache; cells then run in this process or on a backend (see
    `_stay_here`), and each record is written, atomically, as soon as its cell completes.
    """
    cells = plan(sweep, options, extra_tasks)
    try:  # before any compute: a results folder that cannot be made fails now
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchmarkError(
            f"cannot use --out {options.out} as a results folder: {error}"
        ) from None
    result = SweepResult()
    todo = _select(cells, options, result)
    if todo:
        _run_todo(todo, sweep, options, extra_tasks, result)
    order = {cell_key(cell.identity): i for i, cell in enumerate(cells)}
    result.records.sort(key=lambda record: order[record["key"]])
    return result


def _run_todo(
    todo: Sequence[Cell],
    sweep: Sweep,
    options: RunOptions,
    extra_tasks: Sequence[Task],
    result: SweepResult,
) -> None:
    """Encode the cells' texts, run the cells, write and log each record as it completes."""
    backend = make_backend(
        options.backend, options.workers or available_cpus(), options.ray_address
    )
    job = SweepJob(
        token=uuid.uuid4().hex,
        sweep=sweep,
        options=dataclasses.replace(
            options, progress=False, cache_dir=cache_dir(options.cache_dir)
        ),
        extra_tasks=tuple(extra_tasks),
    )
    with open_trackers(options.tensorboard, options.wandb, options.out, _config(sweep)) as tracked:
        context = method_context(sweep, options, todo)
        episode_sets = EpisodeSets()
        encoding = pre_encode(context, todo, episode_sets)
        facts = {
            "versions": package_versions(),
            "git_commit": git_commit(),
            "device": context.device,
        }
        bar = tqdm(total=len(todo), unit="cell", disable=not options.progress)

        def store(record: Record) -> None:
            record.update(facts)
            if record["status"] == "ok" and record["encoder_revision"] is not None:
                record["throughput"].update(encoding)
            write_record(options.out, record)
            tracked.log(record)
            result.add(record)
            bar.update(1)

        with bar:
            left = _run_here(todo, context, options, episode_sets, store)
            if left:
                _run_on_backend(backend, left, job, store, result)


def _select(cells: Sequence[Cell], options: RunOptions, result: SweepResult) -> list[Cell]:
    """The cells to run; stored ones go into `result` (a corrupt record file raises)."""
    todo = []
    for cell in cells:
        stored = stored_record(options.out, cell.identity)
        if stored is None or options.force or (options.retry_failed and stored["status"] != "ok"):
            todo.append(cell)
        else:
            result.records.append(stored)
            result.reused += stored["status"] == "ok"
            result.kept_failed += stored["status"] != "ok"
    return todo


def _config(sweep: Sweep) -> dict[str, object]:
    """The sweep as a tracker's run config."""
    config = dataclasses.asdict(sweep)
    config["specs"] = [spec.label for spec in sweep.specs]
    return config


def _run_here(
    todo: Sequence[Cell],
    context: MethodContext,
    options: RunOptions,
    episode_sets: EpisodeSets,
    store: Callable[[Record], None],
) -> list[Cell]:
    """Run cells in this process while `_stay_here` says so; returns the cells left."""
    left = list(todo)
    start = time.perf_counter()
    while left and _stay_here(options, len(todo) - len(left), time.perf_counter() - start, left):
        cell = left.pop(0)
        label = f"{cell.task.card.name} {cell.method} {cell.spec.label}"
        with tqdm(
            total=cell.episodes_per_seed * len(cell.seeds),
            unit="episode",
            desc=label,
            leave=False,
            position=1,
            disable=not options.progress,
        ) as bar:
            store(run_or_fail(cell, context, options, bar.update, episode_sets.of(cell)))
    return left


def _stay_here(options: RunOptions, done: int, elapsed: float, left: Sequence[Cell]) -> bool:
    """Whether the next cell runs in this process rather than on a backend.

    Ray: never. `workers` given: with one worker, or for the last cell. Automatic: in this
    process first, and on a pool only once the cells run so far predict more than
    `POOL_AFTER_S` seconds for the rest (starting workers costs seconds; small sweeps of cheap
    cells finish sooner without), with several CPUs and the disk embedding cache on.
    """
    if options.backend == "ray":
        return False
    if len(left) == 1:
        return True
    if options.workers is not None:
        return options.workers == 1
    if available_cpus() == 1 or not options.cache or done == 0:
        return True
    return elapsed / done * len(left) <= POOL_AFTER_S


def _run_on_backend(
    backend: Backend,
    left: Sequence[Cell],
    job: SweepJob,
    store: Callable[[Record], None],
    result: SweepResult,
) -> None:
    """Run the cells on the backend, storing each record as it comes back."""
    for record in backend.run(run_job_cell, job, [cell_key(cell.identity) for cell in left]):
        store(record)
        result.pooled += 1
    result.workers = backend.workers


@dataclass(frozen=True)
class SweepJob:
    """What a worker process needs to rebuild a sweep's cells; sent once per worker."""

    token: str  # one per sweep run: a worker plans each job once
    sweep: Sweep
    options: RunOptions
    extra_tasks: tuple[Task, ...]


@dataclass
class _WorkerState:
    token: str
    cells: dict[str, Cell]
    context: MethodContext
    episode_sets: EpisodeSets


_WORKER: list[_WorkerState] = []  # this worker process's current job, planned


def run_job_cell(job: SweepJob, key: str) -> Record:
    """The record of cell `key` of `job`, run in a worker process (which plans the sweep and
    builds the method context on its first cell of the job, and reads embeddings from the
    disk cache that the parent filled)."""
    if not _WORKER or _WORKER[0].token != job.token:
        with contextlib.redirect_stderr(io.StringIO()):  # the parent printed the planning notes
            cells = {cell_key(c.identity): c for c in plan(job.sweep, job.options, job.extra_tasks)}
        context = method_context(job.sweep, job.options, list(cells.values()))
        _WORKER[:] = [_WorkerState(job.token, cells, context, EpisodeSets())]
    state = _WORKER[0]
    cell = state.cells[key]
    return run_or_fail(cell, state.context, job.options, _no_tick, state.episode_sets.of(cell))


def _no_tick(count: int) -> None:
    """Progress of a cell in a worker: not shown (the parent's bar counts cells)."""


def method_context(sweep: Sweep, options: RunOptions, cells: Sequence[Cell]) -> MethodContext:
    """The device and (when a cell needs one) the cached encoder that methods share."""
    device = resolve_device(options.device)
    encoder = None
    if any(cell.entry.needs_encoder for cell in cells):
        store = EmbeddingCache(cache_dir(options.cache_dir)) if options.cache else None
        encoder = CachedEncoder(
            encoders.build_encoder(
                sweep.encoder, EncoderOptions(device, options.batch_size, options.progress)
            ),
            store,
        )
    return MethodContext(encoder=encoder, device=device)


def pre_encode(
    context: MethodContext, cells: Sequence[Cell], episode_sets: EpisodeSets
) -> dict[str, float]:
    """Encode the union of the texts (tagging: sentences) of all cells' episodes at once, so that
    the cache and the encoder see one large length-sorted batch instead of one per cell.

    Returns the time and disk-cache counts for every record's throughput (`sweep_*`: shared by
    all cells run together; each cell's own `encoder_s` then only counts memory look-ups).
    """
    encoder = context.encoder
    if encoder is None:
        return {}
    wanted: dict[str, set[str | tuple[str, ...]]] = {}
    sampled: set[int] = set()
    for cell in cells:
        episodes = episode_sets.of(cell)
        if not cell.entry.needs_encoder or id(episodes) in sampled:
            continue
        sampled.add(id(episodes))
        items = wanted.setdefault(cell.task.kind, set())
        for episode in episodes:
            for item in (*episode.support, *episode.query):
                items.add(item.tokens if cell.task.kind == "tagging" else item.text)
    hits, misses = cache_counts(context)
    start = time.perf_counter()
    for kind, items in wanted.items():
        try:
            if kind == "tagging":
                encoder.encode_tokens(sorted(items, key=len))
            else:
                encoder.encode(sorted(items, key=len))
        except EmbeddingCacheError:
            raise
        except Exception:
            continue  # the cells meet the same error and record it as failed
    synchronize(context.device)
    after = cache_counts(context)
    return {
        "sweep_encoder_s": time.perf_counter() - start,
        "sweep_cache_hits": after[0] - hits,
        "sweep_cache_misses": after[1] - misses,
    }


def train_sweep(sweep: Sweep, options: RunOptions) -> list[Record]:
    """Meta-train (or find the checkpoint of) every trainable method of the sweep, per task and
    training spec; returns each checkpoint's `training` summary with its task and method."""
    cells = plan(sweep, options)
    untrainable = sorted({c.method for c in cells if not c.entry.trainable})
    if untrainable:
        trainable = [n for n in METHODS.names() if resolve_method(n).trainable]
        raise SpecError(
            f"method(s) {', '.join(untrainable)} have nothing to train; trainable methods: "
            f"{', '.join(trainable)}"
        )
    context = method_context(sweep, options, cells)
    summaries: dict[str, Record] = {}
    for cell in cells:
        identity = checkpoint_identity(cell, context)
        key = str(checkpoint_path(options.checkpoints, identity))
        if key not in summaries:
            method = cell.entry.build(cell.entry.config, context)
            summary = prepare_trained(method, cell, context, options)
            summaries[key] = {"task": cell.task.card.name, "method": cell.method, **summary}
    return list(summaries.values())
