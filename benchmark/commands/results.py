"""`fewshot-bench results`: the records of a results folder as tables or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.commands.running import print_folder
from benchmark.engine.store import load_records


def register(commands: argparse._SubParsersAction) -> None:
    """The `results` subcommand."""
    parser = commands.add_parser("results", help="show the records in a results folder")
    parser.add_argument("dir", help="results folder written by `run --out`")
    parser.add_argument("--json", action="store_true", help="print all records as one JSON list")
    parser.set_defaults(handler=results)


def results(args: argparse.Namespace) -> int:
    """Print the records of a results folder as tables or JSON."""
    if not args.json:
        return print_folder(Path(args.dir))
    print(json.dumps(load_records(Path(args.dir)), indent=1, sort_keys=True))
    return 0
