"""`fewshot-bench submit`: run a suite for one method into a validated result bundle."""

from __future__ import annotations

import argparse
import hashlib
import inspect
import tempfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from benchmark.analysis.cells import (
    cell_id,
    validate,
)
from benchmark.analysis.tables import results_table
from benchmark.commands.suite_runs import (
    SuiteRun,
    add_suite_run_arguments,
    run_records,
)
from benchmark.core.methods import resolve_method
from benchmark.engine.environment import git_commit, package_versions
from benchmark.engine.store import Record, write_json_atomically

BUNDLE_VERSION = 1


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


def register(commands: argparse._SubParsersAction) -> None:
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
