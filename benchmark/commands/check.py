"""`fewshot-bench check`: the regression gate, a suite's per-episode scores against a stored
baseline (see `benchmark.analysis.gate`)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from benchmark.analysis.cells import (
    EPISODE_FIELDS,
    METHOD_FIELDS,
    RefusedError,
    match_cells,
    read_json,
    validate,
)
from benchmark.analysis.gate import (
    DEFAULT_ALPHA,
    DEFAULT_BASELINE,
    DEFAULT_MARGIN,
    UPDATE_HINT,
    baseline_document,
    compare,
    failures,
    verdict_table,
)
from benchmark.analysis.metric_choice import records_by_metric
from benchmark.analysis.reference import results_dir
from benchmark.commands.arguments import add_metric, add_paired_test
from benchmark.commands.suite_runs import (
    SuiteRun,
    add_suite_run_arguments,
    expected_cells,
    run_records,
)
from benchmark.core.errors import BenchmarkError
from benchmark.engine.store import Record, load_records, write_json_atomically


def load_baseline(path: Path, run: SuiteRun, expected: Mapping[str, Record]) -> dict[str, Record]:
    """The baseline's cells by id; refused unless it is valid, of this suite and version, and
    holds every expected cell on the same episodes with the same method config."""
    document = read_json(path)
    validate(document, "baseline.schema.json", path, "cells")
    suite = run.suite
    if document["suite"] != {"name": suite.name, "version": suite.version}:
        found = document["suite"]
        hint = (
            UPDATE_HINT
            if found["name"] == suite.name
            else (
                f"give the baseline of suite {suite.name} with --baseline FILE (--update-baseline "
                "would overwrite this one)"
            )
        )
        raise RefusedError(
            path,
            [f"baseline of suite {found['name']} version {found['version']}, but the gate runs "
             f"suite {suite.name} version {suite.version}"],
            hint,
        )  # fmt: skip
    return match_cells(expected, document["cells"], path, EPISODE_FIELDS + METHOD_FIELDS,
                       hint=UPDATE_HINT)  # fmt: skip


def our_records(run: SuiteRun, results: Path | None, out: Path | None) -> list[Record]:
    """Read the records of `results`, or run the suite into `out` (else a temporary folder)."""
    if results is not None:
        return load_records(results)
    if out is not None:
        return run_records(run, out)
    with tempfile.TemporaryDirectory(prefix="fewshot-check-") as scratch:
        return run_records(run, Path(scratch))


def check(args: argparse.Namespace) -> int:
    """`fewshot-bench check`: exit 1 when a cell fails the gate (or failed to run), else 0."""
    run = SuiteRun.from_args(args)
    if args.margin < 0 or not 0 < args.alpha <= 1:
        raise BenchmarkError(
            f"--margin {args.margin:g} --alpha {args.alpha:g}: the margin must be >= 0 and "
            "alpha in (0, 1]"
        )
    baseline_path = Path(args.baseline) if args.baseline else results_dir() / DEFAULT_BASELINE
    expected = expected_cells(run)
    baseline = None if args.update_baseline else load_baseline(baseline_path, run, expected)
    results = Path(args.results) if args.results else None
    records = our_records(run, results, Path(args.out) if args.out else None)
    failed = failures(records, expected)
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    where = results if results is not None else f"this run of suite {run.suite.name}"
    ours = match_cells(expected, [r for r in records if r.get("status") == "ok"], where,
                       EPISODE_FIELDS + METHOD_FIELDS)  # fmt: skip
    if baseline is None:
        document = baseline_document(run.suite.name, list(ours.values()))
        validate(document, "baseline.schema.json", baseline_path, "cells")
        write_json_atomically(baseline_path, document)
        print(f"wrote {baseline_path}: {len(ours)} cells of suite {run.suite.name}")
        return 0
    ours = records_by_metric(ours, args.metric)
    baseline = records_by_metric(baseline, args.metric, f"baseline {baseline_path}:")
    verdicts = compare(ours, baseline, args.margin, args.alpha, args.test)
    print(verdict_table(verdicts, args.test))
    bad = [v for v in verdicts if v.failed]
    rule = (
        f"a drop of more than {args.margin:.2f} points with paired-{args.test} p < {args.alpha:g}"
    )
    if bad:
        print(f"\ngate FAILED: {len(bad)} of {len(verdicts)} cells fell below {baseline_path} "
              f"({rule}); {UPDATE_HINT}")  # fmt: skip
        return 1
    print(f"\ngate passed: none of {len(verdicts)} cells fell below {baseline_path} ({rule})")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """The `check` subcommand."""
    parser = commands.add_parser(
        "check",
        help="regression gate: run the quick suite and compare it with a stored baseline",
        description="Run a fixed suite (default: quick) on its fixed episodes, or read its records "
        "from RESULTS, and compare every cell with the baseline file episode by episode. A cell "
        "fails when its mean is more than --margin points below the baseline's and the paired "
        "t-test on the identical episodes gives p < --alpha; then the command exits 1. Baselines "
        "that fail the schema, come from another suite or task version or episode set, or miss "
        "a cell are refused (exit 2). --update-baseline rewrites the baseline on purpose.",
    )
    parser.add_argument(
        "results", nargs="?", default=None, metavar="RESULTS",
        help="a folder of records of the suite (from `run --out`) to read instead of running it",
    )  # fmt: skip
    parser.add_argument(
        "--baseline",
        default=None,
        help=f"baseline file (default the repository's results/{DEFAULT_BASELINE}, or the one "
        "under $FEWSHOT_BENCH_RESULTS)",
    )
    parser.add_argument(
        "--update-baseline", action="store_true",
        help="write the suite's scores as the new baseline instead of comparing",
    )  # fmt: skip
    parser.add_argument(
        "--margin", type=float, default=DEFAULT_MARGIN,
        help=f"allowed drop of a cell's mean, in points (default {DEFAULT_MARGIN:g})",
    )  # fmt: skip
    parser.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA,
        help=f"significance level of the paired t-test (default {DEFAULT_ALPHA:g})",
    )  # fmt: skip
    parser.add_argument(
        "--out", default=None, help="keep the run's records here (default: a temporary folder)"
    )
    add_metric(parser)
    add_paired_test(parser)
    add_suite_run_arguments(parser, device="cpu")
    parser.set_defaults(handler=check)
