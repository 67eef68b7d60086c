"""The `fewshot-bench` command line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tabulate import tabulate

from benchmark.datasource import DATA_DIR_ENV, resolve_data_dir
from benchmark.encoders import DEFAULT_ENCODER
from benchmark.errors import BenchmarkError
from benchmark.registry import ENCODERS, METHODS, TASKS
from benchmark.report import results_table, throughput_table
from benchmark.runner import RunOptions, Sweep, run_sweep
from benchmark.store import load_records
from benchmark.types import EpisodeSpec

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
    (number,) = _positive_ints(value)
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
    what.add_argument("--task", type=_names, required=True, help="task name(s), comma-separated")
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


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="fewshot-bench",
        description="Reproducible few-shot NLP benchmarks: N-way K-shot episodes, 95% CIs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list registered tasks, methods or encoders")
    listing.add_argument("kind", choices=("tasks", "methods", "encoders"))
    run = commands.add_parser(
        "run",
        help="run tasks x methods x shots over seeds and print results",
        description="Run every task x method x N x K cell over seeds x episodes; write one JSON "
        "record per cell to --out and print the results and throughput tables.",
    )
    add_run_arguments(run)
    results = commands.add_parser("results", help="show the records in a results folder")
    results.add_argument("dir", help="results folder written by `run --out`")
    results.add_argument("--json", action="store_true", help="print all records as one JSON list")
    return parser


def command_list(kind: str) -> str:
    """Tables of registered tasks, methods or encoders."""
    if kind == "tasks":
        rows = [
            [
                name,
                e.card.family,
                e.card.version,
                e.card.class_splits,
                e.card.license,
                "yes" if e.card.vendored else "no",
            ]
            for name, e in TASKS.items()
        ]
        return tabulate(
            rows,
            headers=["task", "family", "version", "class splits", "license", "vendored"],
            tablefmt="github",
            disable_numparse=True,
        )
    if kind == "methods":
        rows = [
            [name, e.description, json.dumps(dataclasses.asdict(e.config))]
            for name, e in METHODS.items()
        ]
        return tabulate(
            rows,
            headers=["method", "description", "config"],
            tablefmt="github",
            disable_numparse=True,
        )
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


def sweep_from_args(args: argparse.Namespace) -> tuple[Sweep, RunOptions]:
    """Turn parsed `run` flags into a sweep and its options."""
    specs = tuple(
        EpisodeSpec(n_way=n, k_shot=k, n_query=args.n_query, split=args.split)
        for n in args.n_way
        for k in args.k_shot
    )
    sweep = Sweep(
        tasks=args.task,
        methods=args.method,
        specs=specs,
        episodes=args.episodes,
        seeds=args.seeds,
        encoder=args.encoder,
        split_id=args.split_id,
    )
    options = RunOptions(
        out=Path(args.out),
        data_dir=resolve_data_dir(args.data_dir),
        device=args.device,
        batch_size=args.batch_size,
        force=args.force,
        progress=not args.no_progress,
    )
    return sweep, options


def command_run(args: argparse.Namespace) -> int:
    """Run a sweep, print its tables; exit 1 if a cell failed."""
    sweep, options = sweep_from_args(args)
    result = run_sweep(sweep, options)
    print(results_table(result.records))
    print()
    print(throughput_table(result.records))
    print(
        f"\n{result.ran} cell(s) run, {result.reused} reused from {options.out}, "
        f"{result.failed} failed; records in {options.out}/"
    )
    return 1 if result.failed else 0


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fewshot-bench`; user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "list":
            print(command_list(args.kind))
            return 0
        if args.command == "run":
            return command_run(args)
        return command_results(args)
    except BenchmarkError as error:
        print(f"fewshot-bench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
