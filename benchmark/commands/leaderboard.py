"""`fewshot-bench leaderboard`: rank the bundles of a suite on a markdown leaderboard."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from benchmark.analysis.cells import (
    EPISODE_FIELDS,
    RefusedError,
    cell_id,
    match_cells,
    slot_id,
)
from benchmark.analysis.leaderboard import (
    SUBMIT_HINT,
    Bundle,
    bundle_files,
    leaderboard,
    read_bundle,
)
from benchmark.analysis.metric_choice import records_by_metric
from benchmark.commands.arguments import add_metric, add_paired_test
from benchmark.commands.suite_runs import (
    SuiteRun,
    expected_cells,
)
from benchmark.core.errors import BenchmarkError
from benchmark.core.suites import SUITES
from benchmark.engine.store import Record


def load_bundles(paths: Sequence[str], data_dir: str | None = None) -> list[Bundle]:
    """Every bundle, checked against the cells of its suite (run with `data_dir`): same task
    versions, episodes and encoder, every cell of the task kinds its method handles and no
    other, one bundle per method."""
    documents = {path: read_bundle(path) for path in bundle_files(paths)}
    suites = {d["suite"]["name"] for d in documents.values()}
    if len(suites) > 1:
        raise BenchmarkError(f"bundles of different suites ({', '.join(sorted(suites))}) cannot "
                             "share a leaderboard")  # fmt: skip
    (suite,) = suites
    cells = expected_cells(SuiteRun(SUITES[suite], data_dir=data_dir, progress=False)).values()
    slots: dict[str, Record] = {}
    for cell in cells:
        slots.setdefault(slot_id(cell), cell)
    encoders = {cell["encoder"] for cell in cells} - {None}
    for path, document in documents.items():
        other = [f"cell {cell_id(r)}: encoder {r['encoder']!r}, the suite's is "
                 f"{', '.join(sorted(encoders))}"
                 for r in document["records"] if r["encoder"] not in encoders | {None}]  # fmt: skip
        if other:
            raise RefusedError(path, other, SUBMIT_HINT)
    owners: dict[str, Path] = {}
    bundles = []
    for path, document in documents.items():
        method = document["method"]["name"]
        if method in owners:
            raise RefusedError(path, [f"a second bundle for method {method!r} ({owners[method]})"])
        owners[method] = path
        kinds = set(document["method"]["kinds"])
        required = {name: cell for name, cell in slots.items() if cell["kind"] in kinds}
        records = match_cells(required, document["records"], path, EPISODE_FIELDS, slot_id,
                              SUBMIT_HINT)  # fmt: skip
        bundles.append(Bundle(path, method, suite, records))
    return bundles


def show_leaderboard(args: argparse.Namespace) -> int:
    """`fewshot-bench leaderboard`: print the markdown leaderboard of the bundles."""
    bundles = [
        dataclasses.replace(b, records=records_by_metric(b.records, args.metric, str(b.path)))
        for b in load_bundles(args.bundles, args.data_dir)
    ]
    print(leaderboard(bundles, args.alpha, args.test))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """The `leaderboard` subcommand."""
    parser = commands.add_parser(
        "leaderboard",
        help="rank the methods of result bundles in a markdown table with paired tests",
        description="Read bundles written by `submit` (files, or folders of *.json bundles) of "
        "one suite, refuse any that fail the schema, come from another suite or task version or "
        "episode set, or miss a cell, and print a markdown leaderboard: per task and spec, each "
        "method's mean and 95% CI, and the paired t-test against the best other method on the "
        "identical episodes.",
    )
    parser.add_argument("bundles", nargs="+", metavar="BUNDLE", help="bundle files or folders")
    parser.add_argument(
        "--alpha", type=float, default=0.05, help="significance level marked * (default 0.05)"
    )
    parser.add_argument(
        "--data-dir", default=None,
        help="the data folder the bundles were made with (as in `submit`): a task whose data is "
        "not found here is not a cell of the suite, and bundles holding it are refused",
    )  # fmt: skip
    add_metric(parser)
    add_paired_test(parser)
    parser.set_defaults(handler=show_leaderboard)
