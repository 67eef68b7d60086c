"""`fewshot-bench episodes export`: write a task's sampled episodes, with their fingerprints, as
a JSON-lines file that `run --episodes-file` evaluates exactly."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.commands.arguments import add_data_dir, add_split_id
from benchmark.commands.values import positive_int, seeds
from benchmark.core.datasource import resolve_data_dir
from benchmark.core.episodes import SAMPLER_VERSION
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec
from benchmark.engine.episode_files import write_episodes
from benchmark.engine.planning import checked_source


def register(commands: argparse._SubParsersAction) -> None:
    """The `episodes` subcommand and its `export` action."""
    parser = commands.add_parser("episodes", help="export sampled episodes to a file")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write a task's episodes with their fingerprints as JSON lines",
        description="Sample the episodes `run` would sample (same seeds, same fingerprints) and "
        "write them, texts and labels included, one per line after a header line. `run "
        "--episodes-file FILE --task T` then evaluates exactly these episodes; the file's "
        "sha256 becomes the cells' episode identity.",
    )
    export.add_argument("--task", required=True, help="task name")
    export.add_argument("--n-way", type=positive_int, default=5, help="N (default 5)")
    export.add_argument("--k-shot", type=positive_int, default=1, help="K (default 1)")
    export.add_argument("--n-query", type=positive_int, default=15, help="Q (default 15)")
    export.add_argument("--episodes", type=positive_int, default=200, help="per seed (default 200)")
    export.add_argument("--seeds", type=seeds, default=(0, 1, 2), help="count or list (default 3)")
    export.add_argument("--split", default="test", choices=("train", "valid", "test"))
    export.add_argument("--out", required=True, metavar="FILE.jsonl", help="file to write")
    add_data_dir(export)
    add_split_id(export)
    export.set_defaults(handler=export_episodes)


def export_episodes(args: argparse.Namespace) -> int:
    """Write the episodes and say how many went where."""
    task = TASKS.get(args.task).load(resolve_data_dir(args.data_dir), args.split_id)
    asked = EpisodeSpec(args.n_way, args.k_shot, args.n_query, args.split)
    source = checked_source(task, asked, drop_small=False)
    spec, seeds_used, count = source.effective(asked, args.seeds, args.episodes)
    episodes = source.episodes(spec, seeds_used, count)
    header = {
        "task": task.card.name,
        "task_version": task.card.version,
        "class_split": task.split_name,
        "eval_split": spec.split,
        "data_sha256": task.data_sha256,
        "n_way": spec.n_way,
        "k_shot": spec.k_shot,
        "n_query": spec.n_query or None,
        "seeds": list(seeds_used),
        "episodes_per_seed": count,
        "sampler_version": SAMPLER_VERSION,
    }
    out = Path(args.out)
    write_episodes(out, header, episodes)
    print(f"wrote {len(episodes)} episodes of {task.card.name} {spec.label} to {out}",
          file=sys.stderr)  # fmt: skip
    return 0
