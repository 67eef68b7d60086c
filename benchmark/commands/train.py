"""`fewshot-bench train`: meta-train the trainable methods of a sweep and save checkpoints."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from benchmark.commands.arguments import add_run_arguments, sweep_from_args
from benchmark.core.errors import BenchmarkError
from benchmark.engine.sweep import train_sweep


def register(commands: argparse._SubParsersAction) -> None:
    """The `train` subcommand."""
    parser = commands.add_parser(
        "train",
        help="meta-train methods on a task's training classes and save checkpoints",
        description="Meta-train each trainable method on the training classes of each task "
        "(validating on its validation classes) for every N x K, and save a checkpoint with its "
        "config under --checkpoint-dir. `run` with the same flags then reuses the checkpoints.",
    )
    add_run_arguments(parser)
    parser.set_defaults(handler=train)


def train(args: argparse.Namespace) -> int:
    """Meta-train and save checkpoints; print one line per checkpoint."""
    if args.task_file:
        raise BenchmarkError("train takes --task names; give --task-file to run instead")
    sweep, options = sweep_from_args(args)
    summaries = train_sweep(sweep, options)
    rows = [
        [
            s["task"],
            s["method"],
            s["train_spec"],
            s["steps"],
            "-" if s["best_valid"] is None else f"{100 * s['best_valid']:.2f}",
            s["best_step"],
            f"{s['train_s']:.1f}",
            "reused" if s["reused"] else "trained",
            s["checkpoint"],
        ]
        for s in summaries
    ]
    headers = ["task", "method", "train spec", "steps", "best valid (%)", "at step", "train s",
               "", "checkpoint"]  # fmt: skip
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
    return 0
