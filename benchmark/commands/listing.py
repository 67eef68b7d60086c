"""`fewshot-bench list`: the registered tasks, methods or encoders."""

from __future__ import annotations

import argparse
import dataclasses
import json

from tabulate import tabulate

from benchmark.core.methods import METHODS, resolve_method
from benchmark.core.registry import TASKS
from benchmark.engine.encoders import ENCODERS


def register(commands: argparse._SubParsersAction) -> None:
    """The `list` subcommand."""
    parser = commands.add_parser("list", help="list registered tasks, methods or encoders")
    parser.add_argument("kind", choices=("tasks", "methods", "encoders"))
    parser.set_defaults(handler=show)


def show(args: argparse.Namespace) -> int:
    """Print the table of `args.kind`."""
    print(listing(args.kind))
    return 0


def _per_split(counts: dict, index: int) -> str:
    return " / ".join(f"{split} {value[index]:,}" for split, value in counts.items())


def listing(kind: str) -> str:
    """Tables of registered tasks, methods or encoders."""
    if kind == "tasks":
        rows = [
            [
                name,
                e.card.family,
                _per_split(e.card.counts, 0),
                _per_split(e.card.counts, 1),
                e.card.license,
                "yes" if e.card.vendored else "no",
            ]
            for name, e in sorted(TASKS.items(), key=lambda item: (item[1].card.family, item[0]))
        ]
        headers = [
            "task",
            "family",
            "classes per split",
            "examples per split",
            "license",
            "vendored",
        ]
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    if kind == "methods":
        rows = [
            [
                name,
                "/".join(e.kinds),
                "yes" if e.trainable else "no",
                e.description,
                json.dumps(dataclasses.asdict(e.config)),
            ]
            for name, e in ((name, resolve_method(name)) for name in METHODS.names())
        ]
        headers = ["method", "tasks", "meta-trained", "description", "config (--option)"]
        return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    rows = [[name, e.description] for name, e in ENCODERS.items()]
    rows.append(
        [
            "<org/model> or <folder>",
            "any Hugging Face model (mean pooling) by hub name or local path",
        ]
    )
    return tabulate(
        rows, headers=["encoder", "description"], tablefmt="github", disable_numparse=True
    )
