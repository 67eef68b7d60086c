"""`fewshot-bench report`: write the markdown and HTML report of a results store."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.analysis.report import DPI, FORMATS, write_report
from benchmark.commands.arguments import add_metric


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    if not chosen or set(chosen) - set(FORMATS):
        raise argparse.ArgumentTypeError(f"expected md, html or md,html, got {value!r}")
    return chosen


def _dpi(value: str) -> int:
    if not value.isdigit() or not 20 <= int(value) <= 600:
        raise argparse.ArgumentTypeError(f"expected dots per inch from 20 to 600, got {value!r}")
    return int(value)


def register(commands: argparse._SubParsersAction) -> None:
    """The `report` subcommand."""
    report = commands.add_parser(
        "report",
        help="write a markdown and an HTML report with plots of a results folder",
        description="Read every record of STORE and write report.md with PNG plots next to it "
        "and a self-contained report.html (plots embedded, no external files): a summary of the "
        "records, tasks, methods, episodes, seeds, encoders, commits and versions behind it; "
        "failed cells; the results table; score vs K-shot with 95% CI bands; scores per task; "
        "paired t-tests between methods that ran on identical episodes (matrix and table); "
        "the worst classes per cell (precision, recall, F1); and throughput.",
    )
    report.add_argument("store", metavar="STORE", help="results folder written by `run --out`")
    report.add_argument(
        "--out", metavar="DIR", default=None, help="where the report goes (default STORE/report)"
    )
    report.add_argument(
        "--format",
        type=_formats,
        default=FORMATS,
        help="md (report.md + PNG files), html (report.html) or md,html (default both)",
    )
    report.add_argument(
        "--dpi", type=_dpi, default=DPI, help=f"resolution of the plots (default {DPI})"
    )
    add_metric(report)
    report.set_defaults(handler=write)


def write(args: argparse.Namespace) -> int:
    """Write the report and print the paths written."""
    store = Path(args.store)
    out = Path(args.out) if args.out else None
    for path in write_report(store, out, args.format, args.dpi, args.metric):
        print(path)
    return 0
