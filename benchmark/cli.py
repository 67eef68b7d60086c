"""The `fewshot-bench` command line: builds one subcommand per module of `benchmark.commands`
and dispatches to it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from benchmark.commands import (
    cache,
    check,
    describe,
    episodes,
    leaderboard,
    listing,
    perf,
    report,
    reproduce,
    results,
    run,
    stats_check,
    submit,
    train,
)
from benchmark.commands.running import guarded

# In the order `fewshot-bench --help` lists them.
COMMANDS = (listing, describe, run, train, results, report, episodes, cache, perf, stats_check,
            reproduce, check, submit, leaderboard)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: each command module registers its subcommand and handler."""
    parser = argparse.ArgumentParser(
        prog="fewshot-bench",
        description="Reproducible few-shot NLP benchmarks: N-way K-shot episodes, 95% CIs.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `fewshot-bench`; user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    return guarded(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
