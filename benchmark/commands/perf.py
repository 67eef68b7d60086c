"""`fewshot-bench perf`: every performance target measured side by side in one process,
printed as a table of ratios and written to `perf.json`; the default suite's rows are measured
here, the others in `benchmark.perf`."""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

import torch
from tabulate import tabulate

from benchmark.commands.arguments import add_data_dir, add_device, parse_run_line
from benchmark.commands.running import run_default_suite
from benchmark.commands.values import positive_int
from benchmark.core.suites import COMMON, DEFAULT_SUITE
from benchmark.core.types import EpisodeSpec
from benchmark.engine.devices import resolve_device
from benchmark.engine.planning import plan
from benchmark.engine.store import load_records
from benchmark.engine.sweep import EpisodeSets, method_context, pre_encode
from benchmark.perf.measurement import Measurement, perf_record, timed, write_record


def register(commands: argparse._SubParsersAction) -> None:
    """The `perf` subcommand."""
    parser = commands.add_parser(
        "perf",
        help="measure the performance targets side by side and print the ratios",
        description="In one process: vectorised ProtoNet and batched logistic regression against "
        "per-episode ways on the same episodes, our encoder against sentence-transformers, MAML's "
        "torch.func path against higher, a meta-training step with the encoder unfrozen in one "
        "pass against a forward per episode, in-context learning with the demonstrations' "
        "key/value cache against a forward per (query, label), and the default suite cold, warm "
        "and as encoding alone. "
        "Prints a table of ratios with their correctness checks and writes <out>/perf.json.",
    )
    add_device(parser, default="cpu")
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--episodes", type=positive_int, default=1000, help="episodes (1000)")
    parser.add_argument("--sentences", type=positive_int, default=10_000, help="sentences (10000)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="encoder batch (64)")
    parser.add_argument(
        "--icl-queries",
        type=positive_int,
        default=15,
        help="queries per class of the icl row's 5-way 5-shot episode (15)",
    )
    parser.add_argument(
        "--skip-suite", action="store_true", help="leave out the default-suite rows (minutes)"
    )
    add_data_dir(parser, "read by the suite rows (SST-2, ARSC)")
    parser.add_argument("--out", default="runs/perf", help="where perf.json goes (runs/perf)")
    parser.set_defaults(handler=measure)


def measure(args: argparse.Namespace) -> int:
    """Every measurement, a table of ratios, and the record; exit 1 if a target is missed."""
    # Imported here: they import the built-in methods, which other commands load only on use.
    from benchmark.perf.encoder_step import measure_encoder_step
    from benchmark.perf.encoding import measure_encoding
    from benchmark.perf.episodes import measure_episodes
    from benchmark.perf.icl import measure_icl
    from benchmark.perf.maml import measure_maml

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    device = resolve_device(args.device)
    try:
        rows = [measure_encoding(device, args.sentences, args.batch_size)]
        rows += measure_episodes(device, args.episodes)
        rows.append(measure_maml())
        rows.append(measure_encoder_step(device))
        rows.append(measure_icl(device, spec=EpisodeSpec(5, 5, args.icl_queries)))
        if not args.skip_suite:
            with tempfile.TemporaryDirectory(prefix="fewshot-perf-") as scratch:
                rows += measure_suite(device, Path(scratch), args.data_dir)
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
    record = perf_record(rows, device, used)
    print(f"\nrecord: {write_record(record, Path(args.out))}")
    return 0 if all(m.met and m.correct for m in rows) else 1


def _suite_records(out: Path) -> dict[str, list[float]]:
    """Per-episode scores of every finished record in a results folder, by record key."""
    return {r["key"]: r["per_episode"] for r in load_records(out) if r.get("status") == "ok"}


def measure_suite(device: str, scratch: Path, data_dir: str | None) -> list[Measurement]:
    """The default suite cold (empty cache), then warm (same cache, new results folder), and
    encoding the union of the suite's texts alone into another empty cache."""
    extra = ["--device", device, "--no-progress", *(["--data-dir", data_dir] if data_dir else [])]

    def suite(name: str, cache: str) -> float:
        argv = [*extra, "--out", str(scratch / name), "--cache-dir", str(scratch / cache)]
        with contextlib.redirect_stdout(io.StringIO()):
            _, seconds = timed(lambda: run_default_suite(argv), device)
        return seconds

    cold_s = suite("cold", "cache-cold")
    warm_s = suite("warm", "cache-cold")
    cells, context = [], None
    for line in DEFAULT_SUITE:
        sweep, options = parse_run_line(
            [*line, *COMMON, "--skip-unavailable", *extra,
             "--cache-dir", str(scratch / "cache-encode-only")]
        )  # fmt: skip
        line_cells = plan(sweep, options)
        cells.extend(line_cells)
        context = context or method_context(sweep, options, line_cells)
    encoding, encode_s = timed(lambda: pre_encode(context, cells, EpisodeSets()), device)
    cold, warm = _suite_records(scratch / "cold"), _suite_records(scratch / "warm")
    same = cold == warm and bool(cold)
    return [
        Measurement(
            "default suite, second run",
            "warm cache",
            "same suite, cold cache",
            warm_s,
            cold_s,
            cold_s / warm_s,
            ">= 5x",
            cold_s / warm_s >= 5,
            f"{len(warm)} records, all equal" if same else "records differ",
            same,
        ),
        Measurement(
            "default suite, frozen methods, cold",
            "whole suite",
            "encoding its unique texts once, alone",
            cold_s,
            encode_s,
            cold_s / encode_s,
            "<= 1.3x",
            cold_s / encode_s <= 1.3,
            f"{encoding.get('sweep_cache_misses', 0)} texts encoded",
            True,
        ),
    ]
