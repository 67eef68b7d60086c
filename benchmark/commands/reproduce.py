"""`fewshot-bench reproduce`: list the reference tables, or run one and print ours next to
the paper's numbers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tabulate import tabulate

from benchmark.analysis.reference import (
    load_table,
    reference_dir,
    table_names,
)
from benchmark.analysis.reproduction import FULL, QUICK, reproduce
from benchmark.commands.arguments import add_data_dir, add_device, add_encoder, add_no_progress
from benchmark.core.datasource import resolve_data_dir
from benchmark.engine.planning import RunOptions


def list_tables() -> str:
    """One line per reference table (every file validated)."""
    rows = []
    for name in table_names():
        table = load_table(name)
        tasks = sorted({e.setting.task for e in table.entries if e.setting.task})
        rows.append(
            [
                name,
                table.citation,
                len(table.entries),
                "yes" if table.data["verified"] else "no",
                ", ".join(tasks) or "-",
            ]
        )
    headers = ["table", "paper", "numbers", "verified", "our tasks"]
    return f"reference tables in {reference_dir()}:\n" + tabulate(
        rows, headers=headers, tablefmt="github", disable_numparse=True
    )


def register(commands: argparse._SubParsersAction) -> None:
    """The `reproduce` subcommand."""
    parser = commands.add_parser(
        "reproduce",
        help="run a published table's settings and print ours next to the paper's numbers",
        description="Run the settings of a reference table (results/reference/TABLE.json) that "
        "our tasks and methods support, with our implementations, and print per number: our "
        "mean with its 95% CI, the paper's number as printed, the difference and whether the "
        "paper's number lies inside our CI, followed by every known difference in protocol. "
        "Paper methods we lack are listed as 'not implemented'. Finished cells in --out are "
        "reused.",
    )
    parser.add_argument("table", nargs="?", help="reference table name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the reference tables")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"reduced run: {QUICK.episodes} episodes x {len(QUICK.seeds)} seed, meta-trained "
        f"methods only {', '.join(QUICK.trainable or ())} with a small budget "
        f"({QUICK.options['meta_episodes']} training episodes; ner-protonet "
        f"{QUICK.options['ner-protonet.meta_episodes']} source episodes)",
    )
    add_data_dir(parser)
    add_device(parser, default="auto")
    parser.add_argument(
        "--out",
        default=None,
        help="results folder, reused on reruns (default runs/reproduce/TABLE)",
    )
    add_encoder(parser)
    add_no_progress(parser)
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="rerun cells stored as failed by an earlier run (without it they are kept)",
    )
    parser.set_defaults(handler=run_table)


def run_table(args: argparse.Namespace) -> int:
    """`--list`, or run TABLE and print the report; exit 1 if a cell failed."""
    if args.list:
        print(list_tables())
        return 0
    if not args.table:
        print("fewshot-bench reproduce: name a TABLE or pass --list", file=sys.stderr)
        return 2
    load_table(args.table)  # fail on unknown or invalid tables before any compute
    options = RunOptions(
        out=Path(args.out or Path("runs") / "reproduce" / args.table),
        data_dir=resolve_data_dir(args.data_dir),
        device=args.device,
        progress=not args.no_progress,
        retry_failed=args.retry_failed,
    )
    report, ok = reproduce(args.table, QUICK if args.quick else FULL, options, args.encoder)
    print(report)
    print(f"records in {options.out}/")
    if not ok:
        print("failed cells are kept in the records folder; --retry-failed reruns them")
    return 0 if ok else 1
