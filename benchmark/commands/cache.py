"""`fewshot-bench cache`: where the embedding cache is, what it holds, and clearing it."""

from __future__ import annotations

import argparse

from tabulate import tabulate

from benchmark.commands.arguments import add_cache_dir
from benchmark.engine.embedding_cache import EmbeddingCache, cache_dir


def register(commands: argparse._SubParsersAction) -> None:
    """The `cache` subcommand and its actions `info` and `clear`."""
    parser = commands.add_parser(
        "cache",
        help="show or clear the on-disk embedding cache",
        description="Embeddings are cached on disk by encoder, revision and text hash, so that "
        "a second run does not encode the same texts again.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="location, size on disk and entries per encoder")
    add_cache_dir(info)
    clear = actions.add_parser("clear", help="delete the cache, or one encoder's vectors")
    add_cache_dir(clear)
    clear.add_argument("--encoder", default=None, help="delete only this encoder's vectors")
    parser.set_defaults(handler=show)


def show(args: argparse.Namespace) -> int:
    """Print what `cache info` or `cache clear` did."""
    print(cache_action(args))
    return 0


def cache_action(args: argparse.Namespace) -> str:
    """`cache info`: where the cache is and what it holds; `cache clear`: delete (some of) it."""
    cache = EmbeddingCache(cache_dir(args.cache_dir))
    if args.action == "clear":
        if args.encoder is None:
            freed = cache.clear()
            return f"cleared {cache.path} ({freed / 1e6:.1f} MB freed)"
        held = sorted({g.encoder for g in cache.groups()})
        removed = cache.clear(args.encoder)
        done = f"removed {removed:,} cached vector(s) of encoder {args.encoder!r} from {cache.path}"
        if args.encoder in held:
            return done
        return f"{done}; it holds none of that name, only: {', '.join(held) or 'nothing'}"
    groups = cache.groups()
    if not groups:
        return f"embedding cache: {cache.path} (empty)"
    rows = [
        [g.encoder, g.revision, g.kind, g.dim, f"{g.entries:,}", f"{g.vector_bytes / 1e6:.1f}"]
        for g in groups
    ]
    headers = ["encoder", "revision", "kind", "dim", "entries", "vectors MB"]
    return f"embedding cache: {cache.path} ({cache.size_bytes() / 1e6:.1f} MB on disk)\n" + (
        tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
    )
