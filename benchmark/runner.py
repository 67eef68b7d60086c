"""Expand a sweep into cells, check them all, run each, and store one record per cell."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.backends import BACKENDS, Backend, available_cpus, make_backend
from benchmark.batched import EPISODE_BATCH, BatchScorer, score_in_chunks
from benchmark.checkpoints import (
    check_identity,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from benchmark.configs import ConfigError, field_types, with_options
from benchmark.datasource import sha256_of
from benchmark.embedding_cache import EmbeddingCache, EmbeddingCacheError, cache_dir
from benchmark.encoders import (
    DEFAULT_ENCODER,
    CachedEncoder,
    Encoder,
    EncoderOptions,
    build_encoder,
    resolve_device,
    synchronize,
)
from benchmark.environment import git_commit, package_versions, peak_memory_mb, reset_peak_memory
from benchmark.errors import BenchmarkError, DataNotFoundError, SpecError
from benchmark.methods import Method, MethodContext, MethodEntry, resolve_method
from benchmark.metrics import METRICS, score_episode
from benchmark.registry import HUB_TASKS, METHODS, TASKS
from benchmark.sampling import SAMPLER_VERSION, combined_fingerprint, method_rng
from benchmark.stats import mean_ci
from benchmark.store import SCHEMA_VERSION, Record, cell_key, stored_record, write_record
from benchmark.tracking import open_trackers
from benchmark.training import MetaTrainConfig, TensorBoardLogger, meta_train
from benchmark.types import Episode, EpisodeSource, EpisodeSpec, Task

POOL_AFTER_S = 20.0  # automatic workers: use a pool once the rest of a sweep looks this long


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
    drop_small_classes: bool = False
    options: Mapping[str, str] = field(default_factory=dict)  # method options, `[method.]name`


@dataclass(frozen=True)
class RunOptions:
    """How to run it."""

    out: Path
    data_dir: Path | None = None
    device: str = "cpu"
    batch_size: int = 64
    force: bool = False
    progress: bool = True
    source: str = "local"
    skip_unavailable: bool = False
    checkpoint: Path | None = None  # evaluate this checkpoint instead of training
    checkpoint_dir: Path | None = None  # where trained methods are saved (default out/checkpoints)
    log_dir: Path | None = None  # TensorBoard curves of meta-training
    cache: bool = True  # read and write the on-disk embedding cache (False: in memory only)
    cache_dir: Path | None = None  # else $FEWSHOT_BENCH_CACHE, else ~/.cache/fewshot-bench
    retry_failed: bool = False  # rerun cells stored as failed (else they are kept)
    backend: str = "local"  # one of benchmark.backends.BACKENDS
    workers: int | None = None  # local worker processes; None: automatic (see _stay_here)
    ray_address: str | None = None  # an existing Ray cluster; None: start a local Ray
    tensorboard: Path | None = None  # log each cell's result for TensorBoard here
    wandb: bool = False  # log each cell's result to Weights & Biases

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise SpecError(f"unknown backend {self.backend!r}; choose {' or '.join(BACKENDS)}")

    @property
    def checkpoints(self) -> Path:
        """The folder of checkpoints: `checkpoint_dir`, else `out/checkpoints`."""
        return self.checkpoint_dir or self.out / "checkpoints"


@dataclass(frozen=True)
class Cell:
    """One unit of work: a task split, a method and a spec, over all seeds of the sweep."""

    task: Task
    source: EpisodeSource
    method: str
    entry: MethodEntry
    spec: EpisodeSpec
    seeds: tuple[int, ...]
    episodes_per_seed: int
    identity: Record


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


def load_tasks(names: Sequence[str], split_id: int, options: RunOptions) -> dict[str, Task]:
    """Load each named task once, from local files or (`source="hub"`) the Hugging Face hub.

    With `skip_unavailable`, a task whose data is not found is left out with a note.
    """
    registry = HUB_TASKS if options.source == "hub" else TASKS
    entries = {name: registry.get(name) for name in names}
    tasks: dict[str, Task] = {}
    for name, entry in entries.items():
        try:
            if options.source == "hub":
                tasks[name] = entry(split_id, options.data_dir)
            else:
                tasks[name] = entry.load(options.data_dir, split_id)
        except DataNotFoundError as error:
            if not options.skip_unavailable:
                raise
            print(f"skipping task {name}: {error}", file=sys.stderr)
    return tasks


def plan(sweep: Sweep, options: RunOptions, extra_tasks: Sequence[Task] = ()) -> list[Cell]:
    """All cells of the sweep, after checking every name and spec; nothing is encoded yet.

    `extra_tasks` are tasks loaded by the caller (e.g. from a user's file) run alongside.
    """
    if sweep.episodes < 1:
        raise SpecError(f"episodes must be at least 1, got {sweep.episodes}")
    if not sweep.seeds:
        raise SpecError("at least one seed is needed")
    resolve_device(options.device)  # a mistyped device fails here, not in every cell
    methods = configured_methods(sweep.methods, sweep.options)
    if options.checkpoint is not None and not any(e.trainable for e in methods.values()):
        raise SpecError(
            f"--checkpoint {options.checkpoint}: none of the methods being run "
            f"({', '.join(methods)}) is trained, so there is nothing to load it into"
        )
    tasks = load_tasks(sweep.tasks, sweep.split_id, options)
    for task in extra_tasks:
        if task.card.name in TASKS:
            raise SpecError(
                f"your file {task.card.source} would be task {task.card.name!r}, the name of a "
                "built-in task; rename the file"
            )
    tasks.update((task.card.name, task) for task in extra_tasks)
    checked: list[Cell] = []
    for task in tasks.values():
        for method_name, entry in methods.items():
            if task.kind not in entry.kinds:
                fitting = [n for n in METHODS.names() if task.kind in resolve_method(n).kinds]
                raise SpecError(
                    f"method {method_name!r} handles {' and '.join(entry.kinds)} tasks, but "
                    f"{task.card.name!r} is a {task.kind} task; methods for it: "
                    f"{', '.join(fitting)}"
                )
        for asked in sweep.specs:
            source = _checked_source(task, asked, sweep.drop_small_classes)
            spec, seeds, count = source.effective(asked, sweep.seeds, sweep.episodes)
            for method_name, entry in methods.items():
                if entry.trainable and options.checkpoint is None:
                    _check_trainable(task, method_name, entry, spec)
                identity = _identity(task, source, method_name, entry, spec, seeds, count, sweep)
                checked.append(Cell(task, source, method_name, entry, spec, seeds, count, identity))
    # Only once every name and spec is checked: what else makes a cell (may build the encoder).
    revision = (
        encoder_revision(sweep.encoder, options)
        if any(c.entry.needs_encoder for c in checked)
        else None
    )
    checkpoint = (
        checkpoint_digest(options.checkpoint)
        if options.checkpoint is not None and any(c.entry.trainable for c in checked)
        else None
    )
    cells: dict[str, Cell] = {}
    for cell in checked:
        cell.identity.update(
            encoder_revision=revision if cell.entry.needs_encoder else None,
            checkpoint=checkpoint if cell.entry.trainable else None,
        )
        cells.setdefault(cell_key(cell.identity), cell)
    return list(cells.values())


def encoder_revision(name: str, options: RunOptions) -> str:
    """The revision of the encoder the sweep names (its weights are not loaded): part of every
    cell's identity, so records of other weights are never reused."""
    device = resolve_device(options.device)
    return build_encoder(name, EncoderOptions(device, options.batch_size, False)).revision


def checkpoint_digest(path: Path) -> str:
    """The first 16 hex digits of the sha256 of a checkpoint file given to evaluate: part of the
    identity of the cells that load it."""
    if not path.is_file():
        raise BenchmarkError(f"no checkpoint at {path}")
    return sha256_of(path.read_bytes())[:16]


def configured_methods(names: Sequence[str], options: Mapping[str, str]) -> dict[str, MethodEntry]:
    """Each named method with the `--option`s that apply to it (typed, checked).

    An option `name=value` applies to every method whose config has `name`; `method.name=value`
    to that method only. An option that no method takes fails with the methods' options.
    """
    entries = {name: resolve_method(name) for name in names}
    used: set[str] = set()
    configured = {}
    for name, entry in entries.items():
        fields = {f.name for f in dataclasses.fields(entry.config)}
        mine = {}
        for option, value in options.items():
            method, dot, field_name = option.rpartition(".")
            if dot and method == name:
                mine[field_name] = value
                used.add(option)
            elif not dot and option in fields:
                mine[option] = value
                used.add(option)
        config = with_options(entry.config, mine, name)
        configured[name] = dataclasses.replace(entry, config=config)
    unused = sorted(set(options) - used)
    if unused:
        offered = "; ".join(
            f"{name}: {', '.join(field_types(entry.config)) or 'no options'}"
            for name, entry in entries.items()
        )
        raise ConfigError(
            f"no method being run takes option(s) {', '.join(unused)} (a 'method.name' option "
            f"must name a method being run). Options by method: {offered}"
        )
    return configured


def _check_trainable(task: Task, method: str, entry: MethodEntry, spec: EpisodeSpec) -> None:
    """A method that meta-trains needs a train split that can serve its training episodes."""
    if not isinstance(entry.config, MetaTrainConfig) or entry.config.meta_episodes == 0:
        return
    if "train" not in task.splits:
        raise SpecError(
            f"method {method!r} meta-trains on training classes, but {task.card.name} has no "
            f"train split; give your own data a class split (--split-file or --train-classes), "
            f"pass --option meta_episodes=0 to run it untrained, or --checkpoint"
        )
    config = entry.config
    train_spec = config.train_spec(spec, len(task.split("train").labels()))
    checks = [("train", train_spec, "train_k_shot or train_n_query")]
    if "valid" in task.splits and config.valid_every > 0 and config.valid_episodes > 0:
        valid_spec = config.valid_spec(spec, len(task.split("valid").labels()))
        checks.append(("valid", valid_spec, "train_n_query, or valid_every=0 (no validation)"))
    for split, split_spec, options in checks:
        try:
            task.split(split).check(split_spec, f"split {split!r} of {task.card.name}")
        except SpecError as error:
            raise SpecError(
                f"{error}; but {method!r} meta-trains on this split, which --drop-small-classes "
                f"does not change: lower K or set --option {options}"
            ) from error


def _checked_source(task: Task, spec: EpisodeSpec, drop_small: bool) -> EpisodeSource:
    source = task.split(spec.split)
    if source.kind == "classification" and not source.fixed and spec.n_way < 2:
        raise SpecError(
            f"n_way={spec.n_way} on {task.card.name}: a classification episode needs at least 2 "
            "classes (with one, every answer is right)"
        )
    where = f"split {spec.split!r} of {task.card.name} ({task.split_name})"
    if drop_small and hasattr(source, "without_small_classes"):
        source, dropped = source.without_small_classes(spec)
        if dropped:
            print(
                f"{where}: left out {len(dropped)} class(es) too small for {spec.label}: "
                f"{', '.join(dropped)}",
                file=sys.stderr,
            )
    source.check(spec, where)
    return source


def _identity(
    task: Task,
    source: EpisodeSource,
    method: str,
    entry: MethodEntry,
    spec: EpisodeSpec,
    seeds: tuple[int, ...],
    episodes_per_seed: int,
    sweep: Sweep,
) -> Record:
    return {
        "task": task.card.name,
        "task_version": task.card.version,
        "family": task.card.family,
        "class_split": task.split_name,
        "eval_split": spec.split,
        "protocol": "fixed" if source.fixed else "sampled",
        "source_domain": task.card.source_domain,
        "target_domain": task.card.target_domain,
        "classes_available": len(source.labels()),
        "data_sha256": task.data_sha256,
        "method": method,
        "method_config": entry.config_dict(method),
        "encoder": sweep.encoder if entry.needs_encoder else None,
        "n_way": spec.n_way,
        "k_shot": spec.k_shot,
        "n_query": None if source.fixed else spec.n_query,
        "episodes_per_seed": episodes_per_seed,
        "seeds": list(seeds),
        "sampler_version": SAMPLER_VERSION,
    }


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
            store(_run_or_fail(cell, context, options, bar.update, episode_sets.of(cell)))
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
    return _run_or_fail(cell, state.context, job.options, _no_tick, state.episode_sets.of(cell))


def _no_tick(count: int) -> None:
    """Progress of a cell in a worker: not shown (the parent's bar counts cells)."""


def method_context(sweep: Sweep, options: RunOptions, cells: Sequence[Cell]) -> MethodContext:
    """The device and (when a cell needs one) the cached encoder that methods share."""
    device = resolve_device(options.device)
    encoder = None
    if any(cell.entry.needs_encoder for cell in cells):
        store = EmbeddingCache(cache_dir(options.cache_dir)) if options.cache else None
        encoder = CachedEncoder(
            build_encoder(
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
    hits, misses = _cache_counts(context)
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
    after = _cache_counts(context)
    return {
        "sweep_encoder_s": time.perf_counter() - start,
        "sweep_cache_hits": after[0] - hits,
        "sweep_cache_misses": after[1] - misses,
    }


def _cache_counts(context: MethodContext) -> tuple[int, int]:
    """Texts the context's encoder has read from the disk cache and encoded, so far."""
    encoder = context.encoder
    if not isinstance(encoder, CachedEncoder):
        return 0, 0
    return encoder.hits, encoder.misses


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


def _run_or_fail(
    cell: Cell,
    context: MethodContext,
    options: RunOptions,
    tick: Callable[[int], None],
    episodes: Sequence[Episode],
) -> Record:
    uses_encoder = context.encoder is not None and cell.entry.needs_encoder
    record: Record = {
        "schema_version": SCHEMA_VERSION,
        **cell.identity,
        "key": cell_key(cell.identity),
        "metric": METRICS[cell.task.kind],
        "n_episodes": cell.episodes_per_seed * len(cell.seeds),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    hits, misses = _cache_counts(context)
    reset_peak_memory(context.device)  # the peak covers meta-training too
    try:
        method = cell.entry.build(cell.entry.config, context)
        if cell.entry.trainable:
            record["training"] = prepare_trained(method, cell, context, options)
        record.update(run_cell(cell, method, context, tick, episodes=episodes))
        record.update(status="ok", error=None)
    except Exception:
        record.update(status="failed", error=traceback.format_exc())
    if uses_encoder and record["status"] == "ok":
        after = _cache_counts(context)
        record["throughput"].update(cache_hits=after[0] - hits, cache_misses=after[1] - misses)
    return record


def run_cell(
    cell: Cell,
    method: Method,
    context: MethodContext,
    tick: Callable[[int], None],
    episode_batch: int = EPISODE_BATCH,
    episodes: Sequence[Episode] | None = None,
) -> Record:
    """Scores, summary and throughput of one cell; raises if the method fails.

    A classification method with `score_batch` scores `episode_batch` episodes at a time (the
    same scores as one by one); `episode_batch=0` scores every episode with `fit`/`predict`.
    `episodes` are the cell's episodes when the sweep has sampled them already.
    """
    if episodes is None:
        episodes = cell.source.episodes(cell.spec, cell.seeds, cell.episodes_per_seed)
    start = time.perf_counter()
    if cell.entry.needs_encoder and context.encoder is not None:
        _encode_union(context.encoder, episodes, cell.task.kind)
        synchronize(context.device)
    encoder_s = time.perf_counter() - start
    if episode_batch > 0 and cell.task.kind == "classification" and isinstance(method, BatchScorer):
        scores = score_in_chunks(method, episodes, tick, episode_batch)
    else:
        scores = []
        for episode in episodes:
            rng = method_rng(episode.seed, episode.index)
            scores.append(score_episode(cell.task.kind, method, episode, rng))
            tick(1)
    synchronize(context.device)
    wall_s = time.perf_counter() - start
    summary = mean_ci(scores)
    examples = sum(len(e.support) + len(e.query) for e in episodes)
    per_seed = [
        scores[i : i + cell.episodes_per_seed]
        for i in range(0, len(scores), cell.episodes_per_seed)
    ]
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


def cell_train_spec(cell: Cell) -> EpisodeSpec:
    """The spec of the training episodes of a trainable cell (its own spec otherwise)."""
    config, task = cell.entry.config, cell.task
    if not isinstance(config, MetaTrainConfig):
        return cell.spec
    classes = len(task.split("train").labels()) if "train" in task.splits else cell.spec.n_way
    return config.train_spec(cell.spec, classes)


def checkpoint_identity(cell: Cell, context: MethodContext) -> Record:
    """What a checkpoint for this cell's method was (or must be) trained on."""
    train_spec = cell_train_spec(cell)
    return {
        "method": cell.method,
        "method_config": cell.identity["method_config"],
        "task": cell.task.card.name,
        "task_version": cell.task.card.version,
        "class_split": cell.task.split_name,
        "data_sha256": cell.task.data_sha256,
        "encoder": cell.identity["encoder"],
        "encoder_revision": context.encoder.revision if context.encoder is not None else None,
        "train_spec": train_spec.label,
    }


def prepare_trained(
    method: Method, cell: Cell, context: MethodContext, options: RunOptions
) -> Record:
    """Load the method's checkpoint (given, or found in the checkpoint folder) or meta-train it
    on the task's training classes and save one; returns the record's `training` field."""
    identity = checkpoint_identity(cell, context)
    path = options.checkpoint or checkpoint_path(options.checkpoints, identity)
    if options.checkpoint is not None or (path.is_file() and not options.force):
        payload = load_checkpoint(path)
        check_identity(path, payload["identity"], identity)
        method.load_checkpoint_state(payload["state"])  # type: ignore[attr-defined]
        return {"checkpoint": str(path), "reused": True, **payload["summary"]}
    config = cell.entry.config
    train_spec = cell_train_spec(cell)
    logger = None
    if options.log_dir is not None:
        logger = TensorBoardLogger(options.log_dir, path.stem)
    with tqdm(
        total=config.meta_episodes,
        unit="episode",
        desc=f"meta-training {cell.method} on {cell.task.card.name} {train_spec.label}",
        disable=not options.progress,
        leave=False,
    ) as bar:
        result = meta_train(
            method,  # type: ignore[arg-type]
            config,
            cell.spec,
            cell.task.kind,
            cell.task.split("train"),
            cell.task.splits.get("valid"),
            logger,
            bar.update,
        )
    summary = {
        "train_spec": train_spec.label,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_valid": result.best_valid,
        "train_s": result.train_s,
    }
    save_checkpoint(path, identity, result.state, summary=summary, history=result.history)
    return {"checkpoint": str(path), "reused": False, **summary}


def _encode_union(encoder: Encoder, episodes: Sequence[Episode], kind: str) -> None:
    """Encode every text (or sentence) the episodes hold once, shortest first."""
    items = {item for episode in episodes for item in (*episode.support, *episode.query)}
    if kind == "tagging":
        encoder.encode_tokens(sorted({item.tokens for item in items}, key=len))
    else:
        encoder.encode(sorted({item.text for item in items}, key=len))
