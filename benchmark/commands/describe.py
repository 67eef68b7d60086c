"""`fewshot-bench describe`: a task's card and the classes and examples of each split."""

from __future__ import annotations

import argparse
import dataclasses

from tabulate import tabulate

from benchmark.commands.arguments import add_data_dir, add_split_id
from benchmark.core.datasource import resolve_data_dir
from benchmark.core.registry import TASKS


def register(commands: argparse._SubParsersAction) -> None:
    """The `describe` subcommand."""
    parser = commands.add_parser("describe", help="show a task's card and its loaded counts")
    parser.add_argument("task", help="task name")
    add_data_dir(parser)
    add_split_id(parser)
    parser.set_defaults(handler=show)


def show(args: argparse.Namespace) -> int:
    """Print the task's card and its splits."""
    print(description(args))
    return 0


def description(args: argparse.Namespace) -> str:
    """The task card, and per split the classes and examples of the loaded data."""
    entry = TASKS.get(args.task)
    task = entry.load(resolve_data_dir(args.data_dir), args.split_id)
    card = dataclasses.asdict(task.card)
    card.pop("counts")
    lines = [f"{key}: {value}" for key, value in card.items() if value not in (None, "", ())]
    lines += [
        f"class split: {task.split_name} (split ids: {', '.join(map(str, entry.split_ids))})",
        f"data: {task.data_path} (sha256 {task.data_sha256[:16]}...)",
        *(f"note: {note}" for note in task.notes),
        "",
    ]
    rows = []
    for name, source in task.splits.items():
        labels = source.labels()
        shown = ", ".join(labels[:8]) + (
            f", ... ({len(labels) - 8} more)" if len(labels) > 8 else ""
        )
        rows.append(
            [name, "fixed" if source.fixed else "sampled", len(labels), f"{source.size():,}", shown]
        )
    headers = ["split", "episodes", "classes", "examples", "classes (first 8)"]
    return "\n".join(lines) + tabulate(
        rows, headers=headers, tablefmt="github", disable_numparse=True
    )
