"""The `fewshot-bench` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from benchmark.backends import BACKENDS
from benchmark.configs import parse_options
from benchmark.datasource import DATA_DIR_ENV, resolve_data_dir
from benchmark.embedding_cache import CACHE_ENV, EmbeddingCache, cache_dir
from benchmark.encoders import DEFAULT_ENCODER, resolve_device
from benchmark.errors import BenchmarkError
from benchmark.methods import resolve_method
from benchmark.registry import ENCODERS, METHODS, TASKS
from benchmark.report import results_table, throughput_table
from benchmark.reporting import add_report_parser, command_report
from benchmark.reproduce import add_reproduce_parser, command_reproduce
from benchmark.runner import POOL_AFTER_S, RunOptions, Sweep, run_sweep, train_sweep
from benchmark.store import load_records, spec_label
from benchmark.types import EpisodeSpec, Task
from tasks.files import FORMATS, load_file_task

DEFAULT_OUT = "runs"


def _names(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected one or more comma-separated names")
    return names


def _positive_ints(value: str) -> tuple[int, ...]:
    try:
        numbers = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {value!r}"
        ) from None
    if any(n < 1 for n in numbers):
        raise argparse.ArgumentTypeError(f"every value must be at least 1, got {value!r}")
    return numbers


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value!r}")
    return number


def _seeds(value: str) -> tuple[int, ...]:
    """`3` means seeds 0, 1, 2; `0,7,9` lists seeds explicitly."""
    if "," not in value:
        return tuple(range(_positive_int(value)))
    try:
        seeds = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a count or a list of seeds, got {value!r}"
        ) from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds repeat in {value!r}")
    return seeds


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` (also accepted by run_all.py)."""
    what = parser.add_argument_group("what to run")
    what.add_argument("--task", type=_names, default=(), help="task name(s), comma-separated")
    what.add_argument(
        "--method", type=_names, required=True, help="method name(s), comma-separated"
    )
    what.add_argument(
        "--n-way", type=_positive_ints, default=(5,), help="N, classes per episode (default 5)"
    )
    what.add_argument(
        "--k-shot",
        type=_positive_ints,
        default=(1, 5),
        help="K, support examples per class; several as 1,5 (default 1,5)",
    )
    what.add_argument(
        "--n-query", type=_positive_int, default=15, help="Q, query examples per class (default 15)"
    )
    what.add_argument(
        "--episodes", type=_positive_int, default=200, help="episodes per seed (default 200)"
    )
    what.add_argument(
        "--seeds",
        type=_seeds,
        default=(0, 1, 2),
        help="a count (3 -> seeds 0,1,2) or a list 0,7,9 (default 3)",
    )
    what.add_argument(
        "--split",
        default="test",
        choices=("train", "valid", "test"),
        help="class split that episodes come from (default test)",
    )
    what.add_argument(
        "--split-id",
        type=_positive_int,
        default=1,
        help="which of a task's standard class splits (default 1)",
    )
    what.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"registered encoder, Hugging Face model or local folder (default {DEFAULT_ENCODER})",
    )
    what.add_argument(
        "--drop-small-classes",
        action="store_true",
        help="leave out classes with fewer than K+Q examples instead of failing",
    )
    own = parser.add_argument_group("your own data (instead of, or besides, --task)")
    own.add_argument("--task-file", default=None, help="a JSON lines, CSV, TSV or CoNLL file")
    own.add_argument(
        "--format", choices=FORMATS, default=None, help="file format (default: by suffix)"
    )
    own.add_argument("--text-col", default="text", help="text column or key (default text)")
    own.add_argument("--label-col", default="label", help="label column or key (default label)")
    own.add_argument(
        "--split-file",
        default=None,
        help='JSON {"train": [...], "valid": [...], "test": [...]} class split of the file',
    )
    own.add_argument(
        "--train-classes",
        type=_names,
        default=(),
        help="classes for training; the others become test classes",
    )
    how = parser.add_argument_group("how to run it")
    how.add_argument(
        "--data-dir",
        default=None,
        help=f"folder holding the data sets (else ${DATA_DIR_ENV}, else vendored copies)",
    )
    how.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (default: cuda when available)"
    )
    how.add_argument(
        "--batch-size", type=_positive_int, default=64, help="encoder batch size (default 64)"
    )
    how.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"results folder; finished cells there are reused (default {DEFAULT_OUT})",
    )
    how.add_argument(
        "--force", action="store_true", help="rerun cells that already have a result in --out"
    )
    how.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_cache_dir_argument(how)
    how.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the on-disk embedding cache (encode everything afresh)",
    )
    how.add_argument(
        "--quiet", action="store_true", help="print only the summary line, not the tables"
    )
    how.add_argument(
        "--source",
        choices=("local", "hub"),
        default="local",
        help="read data from --data-dir / vendored copies (local, default) or download it from "
        "the Hugging Face hub with `datasets` (hub, needs network)",
    )
    add_training_arguments(how)
    how.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="leave out tasks whose data is not found (with a note) instead of failing",
    )


def add_cache_dir_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The `--cache-dir` flag of `run`, `train` and `cache`."""
    parser.add_argument(
        "--cache-dir",
        default=None,
        help=f"embedding cache folder (else ${CACHE_ENV}, else ~/.cache/fewshot-bench)",
    )


def add_training_arguments(group: argparse._ArgumentGroup) -> None:
    """Method options and the flags of meta-training (shared by `run` and `train`)."""
    group.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="[METHOD.]NAME=VALUE",
        help="set a method's config option (typed; see `list methods`); repeatable",
    )
    group.add_argument(
        "--checkpoint",
        default=None,
        help="evaluate this checkpoint of a trainable method instead of training one",
    )
    group.add_argument(
        "--checkpoint-dir",
        default=None,
        help="where trained methods are saved and found (default <out>/checkpoints)",
    )
    group.add_argument(
        "--log-dir",
        default=None,
        help="write meta-training curves (loss, validation score per step) for TensorBoard here; "
        "--tensorboard logs each cell's final result instead",
    )


def _workers(value: str) -> int | None:
    """`auto` (None) or a positive number of worker processes."""
    if value == "auto":
        return None
    try:
        return _positive_int(value)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error}, or auto") from None


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `run` for large sweeps: backends, resuming, failed cells, tracking."""
    group = parser.add_argument_group(
        "large sweeps (finished cells in --out are never rerun unless --force)"
    )
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default="local",
        help="where cells run: local (this machine, default) or ray (the cluster at "
        "--ray-address, else a Ray instance started here; pip install 'fewshot-bench[ray]')",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        default=None,
        metavar="N|auto",
        help="local worker processes; 1 runs every cell in this process. auto (default): cells "
        "run in this process, and the rest go to one worker per CPU once the cells run so far "
        f"predict over {POOL_AFTER_S:.0f} s for them (starting a worker costs seconds, more than "
        "small sweeps of cheap cells take)",
    )
    group.add_argument(
        "--ray-address",
        default=None,
        help="with --backend ray: address of a running Ray cluster (default: start a local Ray)",
    )
    group.add_argument(
        "--retry-failed",
        action="store_true",
        help="rerun cells stored as failed (without it they are kept, not rerun)",
    )
    group.add_argument(
        "--tensorboard",
        default=None,
        metavar="DIR",
        help="log each cell's mean, ci95, episodes/s and wall s for TensorBoard in DIR "
        "(--log-dir logs meta-training curves)",
    )
    group.add_argument(
        "--wandb",
        action="store_true",
        help="log each cell's result to Weights & Biases (pip install wandb; offline under "
        "<out>/wandb unless WANDB_MODE or an API key says otherwise)",
    )


def sweep_run_options(args: argparse.Namespace) -> dict[str, object]:
    """The RunOptions fields set by the large-sweep flags of `run`."""
    return {
        "backend": args.backend,
        "workers": args.workers,
        "ray_address": args.ray_address,
        "retry_failed": args.retry_failed,
        "tensorboard": Path(args.tensorboard) if args.tensorboard else None,
        "wandb": args.wandb,
    }


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="fewshot-bench",
        description="Reproducible few-shot NLP benchmarks: N-way K-shot episodes, 95% CIs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list registered tasks, methods or encoders")
    listing.add_argument("kind", choices=("tasks", "methods", "encoders"))
    describe = commands.add_parser("describe", help="show a task's card and its loaded counts")
    describe.add_argument("task", help="task name")
    describe.add_argument("--data-dir", default=None, help="folder holding the data sets")
    describe.add_argument(
        "--split-id", type=_positive_int, default=1, help="class split (default 1)"
    )
    run = commands.add_parser(
        "run",
        help="run tasks x methods x shots over seeds and print results",
        description="Run every task x method x N x K cell over seeds x episodes; write one JSON "
        "record per cell to --out and print the results and throughput tables.",
    )
    add_run_arguments(run)
    add_sweep_arguments(run)
    train = commands.add_parser(
        "train",
        help="meta-train methods on a task's training classes and save checkpoints",
        description="Meta-train each trainable method on the training classes of each task "
        "(validating on its validation classes) for every N x K, and save a checkpoint with its "
        "config under --checkpoint-dir. `run` with the same flags then reuses the checkpoints.",
    )
    add_run_arguments(train)
    results = commands.add_parser("results", help="show the records in a results folder")
    results.add_argument("dir", help="results folder written by `run --out`")
    results.add_argument("--json", action="store_true", help="print all records as one JSON list")
    add_report_parser(commands)
    cache = commands.add_parser(
        "cache",
        help="show or clear the on-disk embedding cache",
        description="Embeddings are cached on disk by encoder, revision and text hash, so that "
        "a second run does not encode the same texts again.",
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="location, size on disk and entries per encoder")
    add_cache_dir_argument(info)
    clear = actions.add_parser("clear", help="delete the cache, or one encoder's vectors")
    add_cache_dir_argument(clear)
    clear.add_argument("--encoder", default=None, help="delete only this encoder's vectors")
    perf = commands.add_parser(
        "perf",
        help="measure the performance targets side by side and print the ratios",
        description="In one process: vectorised ProtoNet and batched logistic regression against "
        "per-episode ways on the same episodes, our encoder against sentence-transformers, MAML's "
        "torch.func path against higher, and the default suite cold, warm and as encoding alone. "
        "Prints a table of ratios with their correctness checks and writes <out>/perf.json.",
    )
    perf.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    perf.add_argument(
        "--threads", type=_positive_int, default=None, help="torch threads (default: torch's)"
    )
    perf.add_argument("--episodes", type=_positive_int, default=1000, help="episodes (1000)")
    perf.add_argument("--sentences", type=_positive_int, default=10_000, help="sentences (10000)")
    perf.add_argument("--batch-size", type=_positive_int, default=64, help="encoder batch (64)")
    perf.add_argument(
        "--skip-suite", action="store_true", help="leave out the default-suite rows (minutes)"
    )
    perf.add_argument("--data-dir", default=None, help="data folder for the suite's SST-2/ARSC")
    perf.add_argument("--out", default="runs/perf", help="where perf.json goes (runs/perf)")
    add_reproduce_parser(commands)
    from benchmark import gate, submission  # not at the top: they import benchmark.suite -> cli

    gate.add_check_parser(commands)
    submission.add_submit_parser(commands)
    submission.add_leaderboard_parser(commands)
    return parser


def _per_split(counts: dict, index: int) -> str:
    return " / ".join(f"{split} {value[index]:,}" for split, value in counts.items())


def command_list(kind: str) -> str:
    """Tables of registered tasks, methods or encoders."""
    if kind == "tasks":
        rows = [
            [
                name,
                e.card.family,
                _per_split(e.card.counts, 0),
                _per_split(e.card.counts, 1),
                e.card.license,
                "yes" if e.card.vendored else "no",
            ]
            for name, e in sorted(TASKS.items(), key=lambda item: (item[1].card.family, item[0]))
        ]
        headers = [
            "task",
            "family",
            "classes per split",
            "examples per split",
            "license",
            "vendored",
        ]
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    if kind == "methods":
        rows = [
            [
                name,
                "/".join(e.kinds),
                "yes" if e.trainable else "no",
                e.description,
                json.dumps(dataclasses.asdict(e.config)),
            ]
            for name, e in ((name, resolve_method(name)) for name in METHODS.names())
        ]
        headers = ["method", "tasks", "meta-trained", "description", "config (--option)"]
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    rows = [[name, e.description] for name, e in ENCODERS.items()]
    rows.append(
        [
            "<org/model> or <folder>",
            "any Hugging Face model (mean pooling) by hub name or local path",
        ]
    )
    return tabulate(
        rows, headers=["encoder", "description"], tablefmt="github", disable_numparse=True
    )


def command_describe(args: argparse.Namespace) -> str:
    """The task card, and per split the classes and examples of the loaded data."""
    entry = TASKS.get(args.task)
    task = entry.load(resolve_data_dir(args.data_dir), args.split_id)
    card = dataclasses.asdict(task.card)
    card.pop("counts")
    lines = [f"{key}: {value}" for key, value in card.items() if value not in (None, "", ())]
    lines += [
        f"class split: {task.split_name} (split ids: {', '.join(map(str, entry.split_ids))})",
        f"data: {task.data_path} (sha256 {task.data_sha256[:16]}...)",
        *(f"note: {note}" for note in task.notes),
        "",
    ]
    rows = []
    for name, source in task.splits.items():
        labels = source.labels()
        shown = ", ".join(labels[:8]) + (
            f", ... ({len(labels) - 8} more)" if len(labels) > 8 else ""
        )
        rows.append(
            [name, "fixed" if source.fixed else "sampled", len(labels), f"{source.size():,}", shown]
        )
    headers = ["split", "episodes", "classes", "examples", "classes (first 8)"]
    return "\n".join(lines) + tabulate(
        rows, headers=headers, tablefmt="github", disable_numparse=True
    )


def sweep_from_args(args: argparse.Namespace) -> tuple[Sweep, RunOptions]:
    """Turn parsed `run` flags into a sweep and its options."""
    specs = tuple(
        EpisodeSpec(n_way=n, k_shot=k, n_query=args.n_query, split=args.split)
        for n in args.n_way
        for k in args.k_shot
    )
    if not args.task and not args.task_file:
        raise BenchmarkError("name a task with --task NAME[,NAME] or give your own --task-file")
    sweep = Sweep(
        tasks=args.task,
        methods=args.method,
        specs=specs,
        episodes=args.episodes,
        seeds=args.seeds,
        encoder=args.encoder,
        split_id=args.split_id,
        drop_small_classes=args.drop_small_classes,
        options=parse_options(args.option),
    )
    options = RunOptions(
        out=Path(args.out),
        data_dir=resolve_data_dir(args.data_dir),
        device=args.device,
        batch_size=args.batch_size,
        force=args.force,
        progress=not args.no_progress,
        source=args.source,
        skip_unavailable=args.skip_unavailable,
        checkpoint=Path(args.checkpoint) if args.checkpoint else None,
        checkpoint_dir=Path(args.checkpoint_dir) if args.checkpoint_dir else None,
        log_dir=Path(args.log_dir) if args.log_dir else None,
        cache=not args.no_cache,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )
    return sweep, options


def file_tasks(args: argparse.Namespace) -> list[Task]:
    """The task of `--task-file`, if given."""
    if not args.task_file:
        return []
    return [
        load_file_task(
            Path(args.task_file),
            args.format,
            args.text_col,
            args.label_col,
            Path(args.split_file) if args.split_file else None,
            args.train_classes,
        )
    ]


def command_run(args: argparse.Namespace) -> int:
    """Run a sweep, print its tables; exit 1 if a cell failed."""
    sweep, options = sweep_from_args(args)
    options = dataclasses.replace(options, **sweep_run_options(args))
    result = run_sweep(sweep, options, file_tasks(args))
    if not args.quiet:
        print(results_table(result.records))
        print()
        print(throughput_table(result.records))
    for record in result.records:
        if record["status"] != "ok":
            last = (record.get("error") or "").strip().splitlines() or ["unknown error"]
            print(
                f"failed: {record['task']} {record['method']} {spec_label(record)}: {last[-1]}",
                file=sys.stderr,
            )
    pooled = f" ({result.pooled} by {result.workers} workers)" if result.pooled else ""
    print(
        f"\n{result.ran} cell(s) run{pooled}, {result.reused} reused from {options.out}, "
        f"{result.failed} failed; records in {options.out}/"
    )
    if result.kept_failed:
        print(
            f"{result.kept_failed} failed cell(s) kept from an earlier run; --retry-failed "
            "reruns them"
        )
    return 1 if result.failed or result.kept_failed else 0


def command_train(args: argparse.Namespace) -> int:
    """Meta-train and save checkpoints; print one line per checkpoint."""
    if args.task_file:
        raise BenchmarkError("train takes --task names; give --task-file to run instead")
    sweep, options = sweep_from_args(args)
    summaries = train_sweep(sweep, options)
    rows = [
        [
            s["task"],
            s["method"],
            s["train_spec"],
            s["steps"],
            "-" if s["best_valid"] is None else f"{100 * s['best_valid']:.2f}",
            s["best_step"],
            f"{s['train_s']:.1f}",
            "reused" if s["reused"] else "trained",
            s["checkpoint"],
        ]
        for s in summaries
    ]
    headers = ["task", "method", "train spec", "steps", "best valid (%)", "at step", "train s",
               "", "checkpoint"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    return 0


def command_results(args: argparse.Namespace) -> int:
    """Print the records of a results folder as tables or JSON."""
    records = load_records(Path(args.dir))
    if args.json:
        print(json.dumps(records, indent=1, sort_keys=True))
    else:
        print(results_table(records))
        print()
        print(throughput_table(records))
    return 0


def command_cache(args: argparse.Namespace) -> str:
    """`cache info`: where the cache is and what it holds; `cache clear`: delete (some of) it."""
    cache = EmbeddingCache(cache_dir(args.cache_dir))
    if args.action == "clear":
        if args.encoder is None:
            freed = cache.clear()
            return f"cleared {cache.path} ({freed / 1e6:.1f} MB freed)"
        held = sorted({g.encoder for g in cache.groups()})
        removed = cache.clear(args.encoder)
        done = f"removed {removed:,} cached vector(s) of encoder {args.encoder!r} from {cache.path}"
        if args.encoder in held:
            return done
        return f"{done}; it holds none of that name, only: {', '.join(held) or 'nothing'}"
    groups = cache.groups()
    if not groups:
        return f"embedding cache: {cache.path} (empty)"
    rows = [
        [g.encoder, g.revision, g.kind, g.dim, f"{g.entries:,}", f"{g.vector_bytes / 1e6:.1f}"]
        for g in groups
    ]
    headers = ["encoder", "revision", "kind", "dim", "entries", "vectors MB"]
    return f"embedding cache: {cache.path} ({cache.size_bytes() / 1e6:.1f} MB on disk)\n" + (
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    )


def command_perf(args: argparse.Namespace) -> int:
    """Every measurement, a table of ratios, and the record; exit 1 if a target is missed."""
    import tempfile

    import torch

    from benchmark import perf

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    device = resolve_device(args.device)
    try:
        rows = [perf.measure_encoding(device, args.sentences, args.batch_size)]
        rows += perf.measure_episodes(device, args.episodes)
        rows.append(perf.measure_maml())
        if not args.skip_suite:
            with tempfile.TemporaryDirectory(prefix="fewshot-perf-") as scratch:
                rows += perf.measure_suite(device, Path(scratch), args.data_dir)
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    table = [
        [m.name, m.ours, m.compared_with, f"{m.ours_s:.3f}", f"{m.theirs_s:.3f}",
         f"{m.ratio:.2f}x", m.target, "yes" if m.met else "NO", m.correctness]
        for m in rows
    ]  # fmt: skip
    headers = ["measurement", "ours", "compared with", "ours s", "theirs s", "ratio", "target",
               "met", "correctness"]  # fmt: skip
    print(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    record = perf.perf_record(rows, device, used)
    print(f"\nrecord: {perf.write_record(record, Path(args.out))}")
    return 0 if all(m.met and m.correct for m in rows) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fewshot-bench`; user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            print(command_list(args.kind))
            return 0
        if args.command == "run":
            return command_run(args)
        if args.command == "train":
            return command_train(args)
        if args.command == "describe":
            print(command_describe(args))
            return 0
        if args.command == "cache":
            print(command_cache(args))
            return 0
        if args.command == "perf":
            return command_perf(args)
        if args.command == "report":
            return command_report(args)
        if args.command == "reproduce":
            return command_reproduce(args)
        if args.command in ("check", "submit", "leaderboard"):
            return args.handler(args)
        return command_results(args)
    except BenchmarkError as error:
        print(f"fewshot-bench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
