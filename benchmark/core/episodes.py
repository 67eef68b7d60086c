"""Episodes and their identity: per-episode random generators and sha256 fingerprints.

Episode `i` of seed `s` is drawn from its own generator, seeded from a hash of `(s, i)`, so any
episode can be regenerated alone and adding episodes never changes earlier ones. Only
`random.Random.random()` is used, whose output for a given integer seed Python guarantees across
versions, so fingerprints stay put when Python is upgraded. `FlatPool` lays a pool's examples out
in one flat order so that episodes are assembled from integer positions."""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from benchmark.core.types import (
    Episode,
    EpisodeSpec,
    Example,
    Item,
    ItemTable,
    Located,
    TaggedSentence,
    located_episode,
)

# Bump whenever the same (pool, spec, seed, index) would give another episode or fingerprint.
# 2: fingerprint fields JSON-encoded (tabs and newlines in texts can no longer collide); NER
#    episodes keep their drawn entity types across sampling attempts.
SAMPLER_VERSION = 2
Pool = Mapping[str, Sequence[Example]]


def seeded_rng(purpose: str, seed: int, index: int) -> random.Random:
    digest = hashlib.sha256(f"fewshot-bench/{purpose}/{seed}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def episode_rng(seed: int, index: int) -> random.Random:
    """The generator that draws episode `index` under `seed`, independent of every other one."""
    return seeded_rng("episode", seed, index)


def method_rng(seed: int, index: int) -> random.Random:
    """The generator a method may use on episode `index` of `seed` (separate from sampling)."""
    return seeded_rng("method", seed, index)


def choose(rng: random.Random, n: int, k: int) -> list[int]:
    """`k` distinct indices from `range(n)` in draw order: a partial Fisher-Yates shuffle, kept
    sparse (only moved positions are stored), so it costs O(k) whatever `n`; the same indices
    as swapping in a full `list(range(n))`."""
    moved: dict[int, int] = {}
    out = []
    draw = rng.random
    for i in range(k):
        j = i + int(draw() * (n - i))
        out.append(moved.get(j, j))
        moved[j] = moved.get(i, i)  # position i is never read again
    return out


def uniforms(
    purpose_rng: Callable[[int, int], random.Random], keys: Sequence[tuple[int, int]], draws: int
) -> np.ndarray:
    """(len(keys), draws) the first `draws` values of `random()` of each key's generator: the
    numbers `choose` would read, in the order it reads them."""
    out = np.empty((len(keys), draws))
    for row, (seed, index) in enumerate(keys):
        draw = purpose_rng(seed, index).random
        out[row] = [draw() for _ in range(draws)]
    return out


def choose_rows(u: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """`choose` on many rows at once: row r draws `u.shape[1]` distinct indices from
    `range(sizes[r])` with the uniforms `u[r]` (a vectorised partial Fisher-Yates shuffle, the
    same indices as `choose` given the same numbers)."""
    rows, k = u.shape
    perm = np.broadcast_to(np.arange(int(sizes.max())), (rows, int(sizes.max()))).copy()
    r = np.arange(rows)
    for i in range(k):
        j = i + (u[:, i] * (sizes - i)).astype(np.int64)  # int() of a positive double truncates
        perm[r, i], perm[r, j] = perm[r, j], perm[r, i].copy()
    return perm[:, :k]


def _item_fields(part: str, item: Item) -> list:
    if isinstance(item, TaggedSentence):
        return [part, item.uid, list(item.tags), list(item.tokens)]
    return [part, item.uid, item.label, item.text]


def fingerprint(classes: Sequence[str], support: Sequence[Item], query: Sequence[Item]) -> str:
    """sha256 over the classes and every item's uid, label(s) and text, in episode order.

    Each record is one JSON line, so no text (tabs and newlines included) can shift a field
    boundary and make two different episodes collide.
    """
    lines = [item_line("support", item) for item in support]
    lines.extend(item_line("query", item) for item in query)
    return fingerprint_of_lines(classes, lines)


def fingerprint_of_lines(classes: Sequence[str], lines: Sequence[bytes]) -> str:
    """`fingerprint` from the items' `item_line`s, support lines first, in episode order."""
    # The bytes of `json.dumps(["classes", list(classes)])`, from memoised quoted names.
    header = ('["classes", [' + ", ".join(map(_quoted, classes)) + "]]\n").encode()
    return hashlib.sha256(b"".join((header, *lines))).hexdigest()


@functools.lru_cache(maxsize=2**16)
def _quoted(name: str) -> str:
    """`name` as a JSON string."""
    return json.dumps(name)


def item_line(part: str, item: Item) -> bytes:
    """An item's fingerprint line as a `"support"` or `"query"` item."""
    return (json.dumps(_item_fields(part, item)) + "\n").encode()


@dataclass(frozen=True, eq=False)
class FlatPool:
    """The examples of one or more pools (sharing label names) in one flat order, pool after
    pool, with each one's fingerprint lines: episodes are assembled from integer positions with
    C-level gathers, and point into `table` (`Episode.located`)."""

    table: ItemTable
    starts: tuple[dict[str, int], ...]  # per pool, where each label's members begin
    items: tuple[Example, ...]
    support_lines: tuple[bytes, ...]  # each item's `item_line` as a support item
    query_lines: tuple[bytes, ...]

    @classmethod
    def of(cls, *pools: Pool) -> FlatPool:
        names = sorted({label for pool in pools for label in pool})
        ids = {name: i for i, name in enumerate(names)}
        items: list[Example] = []
        label_ids: list[int] = []
        starts = []
        for pool in pools:
            start = {}
            for label, members in pool.items():
                start[label] = len(items)
                items.extend(members)
                label_ids.extend([ids[label]] * len(members))
            starts.append(start)
        table = ItemTable(
            tuple(e.text for e in items), np.array(label_ids, dtype=np.int64), tuple(names)
        )
        return cls(
            table,
            tuple(starts),
            tuple(items),
            tuple(item_line("support", e) for e in items),
            tuple(item_line("query", e) for e in items),
        )

    def episode(
        self,
        classes: Sequence[str],
        support_at: Sequence[int],
        query_at: Sequence[int],
        seed: int,
        index: int,
    ) -> Episode:
        """The episode of the items at `support_at` and `query_at`."""
        in_support, in_query = _picker(support_at), _picker(query_at)
        lines = (*in_support(self.support_lines), *in_query(self.query_lines))
        episode = make_episode(
            classes, in_support(self.items), in_query(self.items), seed, index, lines
        )
        return located_episode(episode, Located(self.table, (*support_at, *query_at)))


Draw = tuple[list[str], list[int], list[int]]  # an episode's classes, support and query positions


@dataclass(frozen=True, eq=False)
class PositionBatch:
    """Episodes of one spec drawn from one `FlatPool`, as integer arrays: the classes in draw
    order, and (episodes, N*K) support and (episodes, N*Q) query positions into `flat.table`.
    The same episodes as the pool's `episodes`, without building their items; fingerprints
    (byte-identical to the episodes') and `Episode` objects are made only when asked."""

    flat: FlatPool
    classes: tuple[tuple[str, ...], ...]
    support: np.ndarray
    query: np.ndarray
    seeds: tuple[int, ...]
    indices: tuple[int, ...]

    @classmethod
    def drawn(
        cls,
        flat: FlatPool,
        draw: Callable[[EpisodeSpec, int, int], Draw],
        spec: EpisodeSpec,
        seeds: Sequence[int],
        count: int,
    ) -> PositionBatch:
        """Episodes `0..count-1` of each seed, drawn by `draw(spec, seed, index)`."""
        keys = [(seed, i) for seed in seeds for i in range(count)]
        draws = [draw(spec, seed, i) for seed, i in keys]
        return cls(
            flat,
            tuple(tuple(classes) for classes, _, _ in draws),
            np.array([support for _, support, _ in draws], dtype=np.int64),
            np.array([query for _, _, query in draws], dtype=np.int64),
            tuple(seed for seed, _ in keys),
            tuple(i for _, i in keys),
        )

    def __len__(self) -> int:
        return len(self.classes)

    def fingerprints(self) -> list[str]:
        """Each episode's fingerprint, from the pool's precomputed lines."""
        support_lines, query_lines = self.flat.support_lines, self.flat.query_lines
        return [
            fingerprint_of_lines(
                classes,
                [*(support_lines[p] for p in support), *(query_lines[p] for p in query)],
            )
            for classes, support, query in zip(
                self.classes, self.support.tolist(), self.query.tolist(), strict=True
            )
        ]

    def episodes(self) -> list[Episode]:
        """The episodes themselves (items, fingerprints, positions)."""
        return [
            self.flat.episode(classes, support, query, seed, index)
            for classes, support, query, seed, index in zip(
                self.classes, self.support.tolist(), self.query.tolist(), self.seeds,
                self.indices, strict=True,
            )
        ]  # fmt: skip


def _picker(at: Sequence[int]) -> Callable[[tuple], tuple]:
    """A function taking `values` to `tuple(values[i] for i in at)`, in C (`itemgetter`)."""
    if len(at) < 2:
        return lambda values: tuple(values[i] for i in at)
    return itemgetter(*at)


def make_episode(
    classes: Sequence[str],
    support: Sequence[Item],
    query: Sequence[Item],
    seed: int,
    index: int,
    lines: Sequence[bytes] | None = None,
) -> Episode:
    """An episode with its fingerprint (from the items' `lines` when the caller has them)."""
    return Episode(
        classes=tuple(classes),
        support=tuple(support),
        query=tuple(query),
        fingerprint=(
            fingerprint(classes, support, query)
            if lines is None
            else fingerprint_of_lines(classes, lines)
        ),
        index=index,
        seed=seed,
    )


def combined_fingerprint(episodes: Sequence[Episode]) -> str:
    """One sha256 over the fingerprints of a sequence of episodes: equal iff same episodes."""
    h = hashlib.sha256()
    for episode in episodes:
        h.update(episode.fingerprint.encode())
    return h.hexdigest()
