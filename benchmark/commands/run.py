"""`fewshot-bench run`: run a sweep and print its results and throughput tables."""

from __future__ import annotations

import argparse

from benchmark.commands.arguments import add_run_arguments, add_sweep_arguments
from benchmark.commands.running import run_and_print


def register(commands: argparse._SubParsersAction) -> None:
    """The `run` subcommand."""
    parser = commands.add_parser(
        "run",
        help="run tasks x methods x shots over seeds and print results",
        description="Run every task x method x N x K cell over seeds x episodes; write one JSON "
        "record per cell to --out and print the results and throughput tables.",
    )
    add_run_arguments(parser)
    add_sweep_arguments(parser)
    parser.set_defaults(handler=run_and_print)
