"""Planning a sweep: every task x method x spec becomes a cell, and every name, option and
spec is checked before anything is encoded or trained."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.core.configs import ConfigError, field_types, with_options
from benchmark.core.datasource import sha256_of
from benchmark.core.episodes import SAMPLER_VERSION
from benchmark.core.errors import BenchmarkError, DataNotFoundError, SpecError
from benchmark.core.methods import METHODS, MethodEntry, resolve_method
from benchmark.core.registry import HUB_TASKS, TASKS
from benchmark.core.types import Encoder, EncoderOptions, EpisodeSource, EpisodeSpec, Task
from benchmark.engine import encoders
from benchmark.engine.backends import BACKENDS
from benchmark.engine.devices import resolve_device
from benchmark.engine.encoders import DEFAULT_ENCODER
from benchmark.engine.episode_files import EpisodeFile, FileEpisodes, read_episodes
from benchmark.engine.language_models import lm_revision
from benchmark.engine.store import Record, cell_key
from benchmark.engine.training import MetaTrainConfig
from benchmark.engine.transformer_encoder import TransformerEncoder
from benchmark.engine.tuned_encoder import check_layers


@dataclass(frozen=True)
class Sweep:
    """What to run: every task x method x spec, each over `seeds` x `episodes` episodes."""

    tasks: tuple[str, ...]
    methods: tuple[str, ...]
    specs: tuple[EpisodeSpec, ...]
    episodes: int
    seeds: tuple[int, ...]
    encoder: str = DEFAULT_ENCODER
    split_ids: tuple[int, ...] | str = (1,)  # class splits, each its own cells; or "all"
    drop_small_classes: bool = False
    options: Mapping[str, str] = field(default_factory=dict)  # method options, `[method.]name`
    episodes_file: Path | None = None  # evaluate these episodes (the specs and seeds it holds)


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


def load_tasks(
    names: Sequence[str], split_ids: tuple[int, ...] | str, options: RunOptions
) -> dict[tuple[str, int], Task]:
    """Load each named task once per class split, from local files or (`source="hub"`) the
    Hugging Face hub. `split_ids` "all" means every split the task has.

    With `skip_unavailable`, a task whose data is not found is left out with a note.
    """
    registry = HUB_TASKS if options.source == "hub" else TASKS
    entries = {name: registry.get(name) for name in names}
    tasks: dict[tuple[str, int], Task] = {}
    for name, entry in entries.items():
        for split_id in _split_ids_of(name, entry, split_ids, options.source):
            try:
                if options.source == "hub":
                    tasks[name, split_id] = entry(split_id, options.data_dir)
                else:
                    tasks[name, split_id] = entry.load(options.data_dir, split_id)
            except DataNotFoundError as error:
                if not options.skip_unavailable:
                    raise
                print(f"skipping task {name}: {error}", file=sys.stderr)
                break
    return tasks


def _split_ids_of(
    name: str, entry: object, asked: tuple[int, ...] | str, source: str
) -> tuple[int, ...]:
    """The split ids to load of a task: `asked`, checked against the ones it has."""
    has = getattr(entry, "split_ids", None)
    if has is None:  # a hub loader checks its own split ids
        if asked == "all":
            raise SpecError(f"--split-id all: task {name!r} from {source} lists no split ids")
        return asked  # type: ignore[return-value]
    if asked == "all":
        return tuple(has)
    unknown = [i for i in asked if i not in has]  # type: ignore[union-attr]
    if unknown:
        raise SpecError(
            f"--split-id {','.join(map(str, unknown))}: task {name!r} has class splits "
            f"{', '.join(map(str, has))}"
        )
    return tuple(asked)  # type: ignore[arg-type]


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
    tasks = load_tasks(sweep.tasks, sweep.split_ids, options)
    for task in extra_tasks:
        if task.card.name in TASKS:
            raise SpecError(
                f"your file {task.card.source} would be task {task.card.name!r}, the name of a "
                "built-in task; rename the file"
            )
    tasks.update(((task.card.name, 1), task) for task in extra_tasks)
    episode_file = None if sweep.episodes_file is None else _episode_file(sweep, tasks)
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
        for asked in sweep.specs[:1] if episode_file else sweep.specs:
            source = (
                FileEpisodes(episode_file)
                if episode_file
                else checked_source(task, asked, sweep.drop_small_classes)
            )
            spec, seeds, count = source.effective(asked, sweep.seeds, sweep.episodes)
            for method_name, entry in methods.items():
                if entry.trainable and options.checkpoint is None:
                    _check_trainable(task, method_name, entry, spec)
                identity = _identity(task, source, method_name, entry, spec, seeds, count, sweep)
                if episode_file:
                    identity.update(protocol="file", episodes_file=episode_file.sha256)
                checked.append(Cell(task, source, method_name, entry, spec, seeds, count, identity))
    # Only once every name and spec is checked: what else makes a cell (may build the encoder).
    encoder = (
        encoders.build_encoder(
            sweep.encoder, EncoderOptions(resolve_device(options.device), options.batch_size)
        )
        if any(c.entry.needs_encoder for c in checked)
        else None
    )
    revision = None if encoder is None else encoder.revision
    for cell in checked:
        _check_unfrozen(cell, encoder)
    checkpoint = (
        checkpoint_digest(options.checkpoint)
        if options.checkpoint is not None and any(c.entry.trainable for c in checked)
        else None
    )
    cells: dict[str, Cell] = {}
    lm_revisions: dict[tuple[str, str], str] = {}
    for cell in checked:
        cell.identity.update(
            encoder_revision=revision if cell.entry.needs_encoder else None,
            checkpoint=checkpoint if cell.entry.trainable else None,
        )
        if hasattr(cell.entry.config, "lm_kind"):  # a language-model method: which model
            cell.identity["lm_revision"] = _lm_revision(cell, lm_revisions)
        cells.setdefault(cell_key(cell.identity), cell)
    return list(cells.values())


def _lm_revision(cell: Cell, known: dict[tuple[str, str], str]) -> str:
    """The revision of a language-model method's `lm` (checked to be of the kind it needs)."""
    config = cell.entry.config
    key = (config.lm, config.lm_kind)
    if key not in known:
        known[key] = lm_revision(config.lm, config.lm_kind, f"method {cell.method!r}")
    return known[key]


def _episode_file(sweep: Sweep, tasks: Mapping[tuple[str, int], Task]) -> EpisodeFile:
    """The sweep's episode file, read and checked against its one task: same name (files of
    ours name theirs) and kind."""
    file = read_episodes(sweep.episodes_file)  # type: ignore[arg-type]
    where = f"--episodes-file {file.path}"
    if len(tasks) != 1:
        raise SpecError(f"{where}: give one --task with an episode file, got {len(tasks)}")
    (task,) = tasks.values()
    named = (file.header or {}).get("task")
    if named is not None and named != task.card.name:
        raise SpecError(f"{where} holds episodes of task {named!r}, not {task.card.name!r}; "
                        f"run it with --task {named}")  # fmt: skip
    if file.kind != task.kind:
        raise SpecError(f"{where} holds {file.kind} episodes, but {task.card.name!r} is a "
                        f"{task.kind} task")  # fmt: skip
    return file


def _check_unfrozen(cell: Cell, encoder: Encoder | None) -> None:
    """A method that trains the encoder's layers needs a transformer with that many (its
    weights are not loaded: the layer count comes from its config)."""
    layers = getattr(cell.entry.config, "unfreeze_layers", 0)
    if layers == 0 or encoder is None:
        return
    where = f"method {cell.method!r}"
    if not isinstance(encoder, TransformerEncoder):
        raise SpecError(
            f"{where} has unfreeze_layers={layers}, which trains a transformer encoder, but "
            f"{encoder.name!r} has no layers; use all-MiniLM-L6-v2 or another Hugging Face model"
        )
    try:
        check_layers(layers, encoder.layers)
    except BenchmarkError as error:
        raise SpecError(f"{where}: {error}") from None


def checkpoint_digest(path: Path) -> str:
    """The first 16 hex digits of the sha256 of a checkpoint file given to evaluate: part of the
    identity of the cells that load it."""
    if not path.is_file():
        raise BenchmarkError(f"no checkpoint at {path}")
    return sha256_of(path.read_bytes())[:16]


def configured_methods(names: Sequence[str], options: Mapping[str, str]) -> dict[str, MethodEntry]:
    """Each named method with the `--option`s that apply to it (typed, checked).

    An option `name=value` applies to every method whose config has `name`; `method.name=value`
    to that method only, and over `name=value` whatever their order. An option that no method
    takes fails with the methods' options.
    """
    entries = {name: resolve_method(name) for name in names}
    used: set[str] = set()
    configured = {}
    for name, entry in entries.items():
        fields = {f.name for f in dataclasses.fields(entry.config)}
        shared, scoped = {}, {}
        for option, value in options.items():
            method, dot, field_name = option.rpartition(".")
            if dot and method == name:
                scoped[field_name] = value
                used.add(option)
            elif not dot and option in fields:
                shared[option] = value
                used.add(option)
        mine = {**shared, **scoped}
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


def checked_source(task: Task, spec: EpisodeSpec, drop_small: bool) -> EpisodeSource:
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
