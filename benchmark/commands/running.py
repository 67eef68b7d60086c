"""Running `fewshot-bench run` lines: a sweep from `run` flags with its tables printed, the
command line's error policy, and the default suite as such lines."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmark.analysis.tables import across_splits_table, results_table, throughput_table
from benchmark.commands.arguments import file_tasks, run_parser, sweep_from_args, sweep_run_options
from benchmark.core.errors import BenchmarkError
from benchmark.core.suites import COMMON, DEFAULT_SUITE
from benchmark.engine.store import Record, load_records, spec_label
from benchmark.engine.sweep import run_sweep


def guarded(call: Callable[[], int]) -> int:
    """`call()`'s exit code; a user error prints one line and gives 2, a closed pipe 1."""
    try:
        return call()
    except BenchmarkError as error:
        print(f"fewshot-bench: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def print_tables(records: Sequence[Record]) -> None:
    """The results table and the throughput table of `records`."""
    print(results_table(records))
    splits = across_splits_table(records)
    if splits:
        print("\nAcross class splits:")
        print(splits)
    print()
    print(throughput_table(records))


def print_folder(folder: Path) -> int:
    """Print the tables of every record in `folder`."""
    print_tables(load_records(folder))
    return 0


def run_and_print(args: argparse.Namespace) -> int:
    """Run the sweep of parsed `run` flags and print its tables; 1 if a cell failed."""
    sweep, options = sweep_from_args(args)
    options = dataclasses.replace(options, **sweep_run_options(args))
    result = run_sweep(sweep, options, file_tasks(args))
    if not args.quiet:
        print_tables(result.records)
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


def run_default_suite(argv: Sequence[str]) -> int:
    """Run every line of the default suite with `argv` appended (a failing line does not stop
    the others), then print the tables of every record in the output folder."""
    parser = run_parser()
    codes = [
        guarded(
            lambda line=line: run_and_print(
                parser.parse_args([*line, *COMMON, "--skip-unavailable", "--quiet", *argv])
            )
        )
        for line in DEFAULT_SUITE
    ]
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out", default=COMMON[-1])
    folder = Path(out.parse_known_args(argv)[0].out)
    codes.append(guarded(lambda: print_folder(folder)))
    return max(codes)
