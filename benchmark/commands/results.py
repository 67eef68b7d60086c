"""`fewshot-bench results`: the records of a results folder as tables or JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.analysis.metric_choice import with_metric
from benchmark.analysis.tables import per_class_table, span_errors_table
from benchmark.commands.arguments import add_metric
from benchmark.commands.running import print_tables
from benchmark.engine.store import load_records


def register(commands: argparse._SubParsersAction) -> None:
    """The `results` subcommand."""
    parser = commands.add_parser("results", help="show the records in a results folder")
    parser.add_argument("dir", help="results folder written by `run --out`")
    parser.add_argument("--json", action="store_true", help="print all records as one JSON list")
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="print each cell's per-class (NER: per entity type) precision, recall, F1 and "
        "support, pooled over its queries, worst F1 first",
    )
    parser.add_argument(
        "--span-errors",
        action="store_true",
        help="NER cells: entity F1 beside span F1 (types ignored), the type accuracy of the "
        "entities found with the right span, and Few-NERD's span and type error counts",
    )
    add_metric(parser)
    parser.set_defaults(handler=results)


def results(args: argparse.Namespace) -> int:
    """Print the records of a results folder as tables or JSON."""
    records = with_metric(load_records(Path(args.dir)), args.metric)
    if args.json:
        print(json.dumps(records, indent=1, sort_keys=True))
    elif args.per_class:
        print(per_class_table(records))
    elif args.span_errors:
        print(span_errors_table(records))
    else:
        print_tables(records)
    return 0
