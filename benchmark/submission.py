"""Submissions: run a suite for one method into a validated result bundle, and rank the bundles
of a suite on a markdown leaderboard with paired tests on identical episodes."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from benchmark.bundles import (
    EPISODE_FIELDS,
    SUITES,
    RefusedError,
    SuiteRun,
    add_suite_run_arguments,
    cell_id,
    expected_cells,
    match_cells,
    read_json,
    run_records,
    slot_id,
    validate,
)
from benchmark.environment import git_commit, package_versions
from benchmark.errors import BenchmarkError
from benchmark.methods import resolve_method
from benchmark.report import results_table
from benchmark.stats import mean_ci, paired_test
from benchmark.store import Record, spec_label, write_json_atomically

BUNDLE_VERSION = 1
SUBMIT_HINT = "rerun `fewshot-bench submit` with this version of fewshot-bench"


def method_source(name: str) -> dict[str, str | None]:
    """`module:qualname` of what builds the method, and the sha256 of that module's file."""
    build = resolve_method(name).build
    try:
        file: str | None = inspect.getsourcefile(build)
    except TypeError:
        file = None
    digest = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None
    return {"object": f"{build.__module__}:{build.__qualname__}", "file_sha256": digest}


def bundle_document(method: str, run: SuiteRun, records: Sequence[Record]) -> Record:
    """The bundle's content: method, suite, environment and every record."""
    return {
        "bundle_version": BUNDLE_VERSION,
        "method": {
            "name": method,
            "config": records[0]["method_config"],
            "kinds": list(resolve_method(method).kinds),
            "source": method_source(method),
        },
        "suite": {"name": run.suite.name, "version": run.suite.version},
        "environment": {
            "versions": package_versions(),
            "git_commit": git_commit(),
            "device": records[0]["device"],
        },
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "records": sorted(records, key=cell_id),
    }


def submit(args: argparse.Namespace) -> int:
    """`fewshot-bench submit`: run the suite for one method and write its bundle; exit 1 (and
    write nothing) if a cell failed."""
    run = SuiteRun.from_args(args, args.method, args.option)
    with tempfile.TemporaryDirectory(prefix="fewshot-submit-") as scratch:
        records = run_records(run, Path(scratch))
    print(results_table(records))
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        for record in failed:
            last = (record.get("error") or "").strip().splitlines() or ["unknown error"]
            print(f"failed: {cell_id(record)}: {last[-1]}")
        print(f"\nno bundle written: {len(failed)} of {len(records)} cells failed")
        return 1
    out = Path(args.out)
    document = bundle_document(args.method, run, records)
    validate(document, "bundle.schema.json", out, "records")
    write_json_atomically(out, document)
    print(f"\nwrote {out}: {len(records)} cells of suite {run.suite.name} for {args.method}")
    return 0


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle: its file, method and records by slot (`task spec`)."""

    path: Path
    method: str
    suite: str
    records: dict[str, Record]


def bundle_files(paths: Sequence[str]) -> list[Path]:
    """The given files, and the `*.json` files of the given folders."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise BenchmarkError(f"no bundles found in {', '.join(paths)}")
    return files


def read_bundle(path: Path) -> Record:
    """A bundle file, refused unless it is valid, of a known suite version and one method."""
    document = read_json(path)
    validate(document, "bundle.schema.json", path, "records")
    name, version = document["suite"]["name"], document["suite"]["version"]
    if name not in SUITES or SUITES[name].version != version:
        known = ", ".join(f"{s.name} version {s.version}" for s in SUITES.values())
        raise RefusedError(
            path, [f"bundle of suite {name} version {version}; known suites: {known}"], SUBMIT_HINT
        )
    method, config = document["method"]["name"], document["method"]["config"]
    others = [f"cell {cell_id(r)}: method is not {method!r}"
              for r in document["records"] if r["method"] != method]  # fmt: skip
    others += [f"cell {cell_id(r)}: method config {r['method_config']} is not the bundle's {config}"
               for r in document["records"] if r["method_config"] != config]  # fmt: skip
    if others:
        raise RefusedError(path, others)
    return document


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


def leaderboard(bundles: Sequence[Bundle], alpha: float) -> str:
    """One markdown table: per slot, methods ranked by mean, each against the best other."""
    by_slot: dict[str, dict[str, Record]] = defaultdict(dict)
    for bundle in bundles:
        for slot, record in bundle.records.items():
            by_slot[slot][bundle.method] = record
    suite = SUITES[bundles[0].suite]
    lines = [
        f"# Leaderboard: suite {suite.name} (version {suite.version}), {len(bundles)} bundles",
        "",
        "Mean and Student-t 95% CI over each cell's episodes, in points. Δ is the mean "
        "difference to the best other method on the same episodes and p the two-sided paired "
        f"t-test's p-value; * marks p < {alpha:g}.",
        "",
        "| task | spec | rank | method | mean ± 95% CI | episodes (seeds) | best other | Δ | p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slot in sorted(by_slot):
        lines += _slot_rows(by_slot[slot], alpha)
    return "\n".join(lines)


def _slot_rows(records: dict[str, Record], alpha: float) -> list[str]:
    """The leaderboard rows of one slot, best first."""
    means = {method: mean_ci(r["per_episode"]) for method, r in records.items()}
    ranked = sorted(records, key=lambda m: (-means[m].mean, m))
    rows = []
    for rank, method in enumerate(ranked, 1):
        record, summary = records[method], means[method]
        ci = "" if summary.ci95 is None else f" ± {100 * summary.ci95:.2f}"
        others = [m for m in ranked if m != method]
        compared = ["-", "-", "-"]
        if others:
            best = others[0]
            test = paired_test(record["per_episode"], records[best]["per_episode"])
            star = "*" if test.p_value < alpha else ""
            compared = [best, f"{100 * test.mean_difference:+.2f}{star}", f"{test.p_value:.3g}"]
        cells = [record["task"], spec_label(record), str(rank), method,
                 f"{100 * summary.mean:.2f}{ci}", f"{summary.n} ({len(record['seeds'])})",
                 *compared]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def show_leaderboard(args: argparse.Namespace) -> int:
    """`fewshot-bench leaderboard`: print the markdown leaderboard of the bundles."""
    print(leaderboard(load_bundles(args.bundles, args.data_dir), args.alpha))
    return 0


def add_submit_parser(commands: argparse._SubParsersAction) -> None:
    """The `submit` subcommand."""
    parser = commands.add_parser(
        "submit",
        help="run a suite for one method and write a result bundle for the leaderboard",
        description="Run the quick suite (or --suite default, the full default suite) for one "
        "method on the suite's fixed episodes and write a JSON bundle (method, config and "
        "source, suite and version, environment, every record with its per-episode scores "
        "and episode fingerprints), validated against results/schema/bundle.schema.json.",
    )
    parser.add_argument(
        "--method", required=True,
        help="a registered method or a module:Class plug-in (importable from PYTHONPATH)",
    )  # fmt: skip
    parser.add_argument("--out", required=True, help="the bundle file to write, e.g. bundle.json")
    parser.add_argument(
        "--option", action="append", default=[], metavar="NAME=VALUE",
        help="set a method config option (as in `run`); repeatable",
    )  # fmt: skip
    # The CPU by default, as the gate: fp16 GPU vectors would give other per-episode scores.
    add_suite_run_arguments(parser, device="cpu")
    parser.set_defaults(handler=submit)


def add_leaderboard_parser(commands: argparse._SubParsersAction) -> None:
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
    parser.set_defaults(handler=show_leaderboard)
