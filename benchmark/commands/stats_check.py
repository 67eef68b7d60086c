"""`fewshot-bench stats-check`: the measured coverage of our 95% intervals, on simulated cells
and on per-episode scores resampled from stored records."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from benchmark.analysis.coverage import (
    SIZES,
    TARGET,
    built_in_scenarios,
    coverage_table,
    resampled,
)
from benchmark.analysis.gate import DEFAULT_BASELINE
from benchmark.analysis.reference import results_dir
from benchmark.commands.values import positive_int
from benchmark.engine.store import load_records


def register(commands: argparse._SubParsersAction) -> None:
    """The `stats-check` subcommand."""
    parser = commands.add_parser(
        "stats-check",
        help="measure how often our 95%% intervals hold the true mean",
        description="Simulate cells of 10, 12 (ARSC), 30, 100 and 1,000 episodes from known "
        "score distributions and from real per-episode scores resampled from stored records, "
        "and print the share of cells whose 95%% interval holds the true mean, for the "
        "Student-t interval, the Wilson interval with design effect (what accuracy records "
        f"use) and a percentile bootstrap. Coverage under {100 * TARGET:.0f}%% is marked *.",
    )
    parser.add_argument("--trials", type=positive_int, default=1000, help="cells per setting")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed (default 0)")
    parser.add_argument(
        "--records", default=None, metavar="DIR",
        help="resample the ok accuracy records of DIR (default: the gate baseline's cells)",
    )  # fmt: skip
    parser.set_defaults(handler=stats_check)


def stats_check(args: argparse.Namespace) -> int:
    """Print the coverage table."""
    if args.records:
        stored = [r for r in load_records(Path(args.records)) if r.get("status") == "ok"]
    else:
        document = json.loads((results_dir() / DEFAULT_BASELINE).read_text())
        stored = document["cells"]
    real = [resampled(r) for r in stored if r["metric"] == "accuracy"][:8]
    rows = coverage_table([*built_in_scenarios(), *real], args.trials, args.seed)
    table = [
        [scenario, interval, *(
            "-" if c is None else f"{100 * c:.1f}{'*' if c < TARGET else ''}" for c in cover
        )]
        for scenario, interval, cover in rows
    ]  # fmt: skip
    headers = ["scenario", "interval", *(f"{n} episodes" for n in SIZES)]
    print(tabulate(table, headers=headers, tablefmt="github", disable_numparse=True))
    print(
        f"\n{args.trials} simulated cells per setting, seed {args.seed}; * under "
        f"{100 * TARGET:.0f}%. Accuracy records use wilson-deff, entity F1 and macro-F1 t."
    )
    return 0
