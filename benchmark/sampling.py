"""Episode sources for classification: sampled from class pools, or fixed by the data set.

Episode `i` of seed `s` is drawn from its own generator, seeded from a hash of `(s, i)`, so any
episode can be regenerated alone and adding episodes never changes earlier ones. Only
`random.Random.random()` is used, whose output for a given integer seed Python guarantees across
versions, so fingerprints stay put when Python is upgraded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import itemgetter

import numpy as np

from benchmark.errors import SpecError
from benchmark.types import (
    Episode,
    EpisodeSpec,
    Example,
    Item,
    ItemTable,
    Kind,
    Located,
    TaggedSentence,
    located_episode,
)

# Bump whenever the same (pool, spec, seed, index) would give another episode or fingerprint.
# 2: fingerprint fields JSON-encoded (tabs and newlines in texts can no longer collide); NER
#    episodes keep their drawn entity types across sampling attempts.
SAMPLER_VERSION = 2
Pool = Mapping[str, Sequence[Example]]


def _rng(purpose: str, seed: int, index: int) -> random.Random:
    digest = hashlib.sha256(f"fewshot-bench/{purpose}/{seed}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def episode_rng(seed: int, index: int) -> random.Random:
    """The generator that draws episode `index` under `seed`, independent of every other one."""
    return _rng("episode", seed, index)


def method_rng(seed: int, index: int) -> random.Random:
    """The generator a method may use on episode `index` of `seed` (separate from sampling)."""
    return _rng("method", seed, index)


def choose(rng: random.Random, n: int, k: int) -> list[int]:
    """`k` distinct indices from `range(n)` in draw order (a partial Fisher-Yates shuffle)."""
    order = list(range(n))
    draw = rng.random
    for i in range(k):
        j = i + int(draw() * (n - i))
        order[i], order[j] = order[j], order[i]
    return order[:k]


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
            tuple(e.text for e in items), np.array(label_ids, dtype=np.int64), len(names)
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


def group_by_label(examples: Iterable[Example], labels: Iterable[str] | None = None) -> Pool:
    """Examples grouped by label (all labels, or only `labels`), each group sorted by uid."""
    wanted = None if labels is None else set(labels)
    grouped: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if wanted is None or example.label in wanted:
            grouped[example.label].append(example)
    return {label: tuple(sorted(grouped[label], key=lambda e: e.uid)) for label in sorted(grouped)}


def check_counts(
    what: str, counts: Mapping[str, int], need: int, where: str, unit: str = "examples"
) -> None:
    short = sorted((n, label) for label, n in counts.items() if n < need)
    if short:
        listed = ", ".join(f"{label!r} ({n})" for n, label in short[:10])
        more = f" and {len(short) - 10} more" if len(short) > 10 else ""
        raise SpecError(
            f"{what} is larger than some classes of {where}: {len(short)} class(es) have fewer "
            f"than {need} {unit}: {listed}{more}. Lower it, or pass --drop-small-classes to "
            f"leave those classes out"
        )


def check_positive(spec: EpisodeSpec) -> None:
    """N, K and Q must be at least 1."""
    for name, value in (("n_way", spec.n_way), ("k_shot", spec.k_shot), ("n_query", spec.n_query)):
        if value < 1:
            raise SpecError(f"{name} must be at least 1, got {value}")


def check_n_way(spec: EpisodeSpec, n_classes: int, where: str, unit: str = "classes") -> None:
    """N must not exceed the classes (or entity types) available."""
    if spec.n_way > n_classes:
        raise SpecError(f"n_way={spec.n_way} is larger than the {n_classes} {unit} of {where}")


@dataclass(frozen=True)
class ClassPool:
    """Support and query are drawn together, without overlap, from each class's examples."""

    by_label: Pool
    kind: Kind = "classification"
    fixed: bool = False

    @classmethod
    def of(cls, examples: Iterable[Example], labels: Iterable[str] | None = None) -> ClassPool:
        """The pool of `examples` (restricted to `labels` when given)."""
        return cls(group_by_label(examples, labels))

    def labels(self) -> tuple[str, ...]:
        return tuple(self.by_label)

    def size(self) -> int:
        return sum(len(v) for v in self.by_label.values())

    def check(self, spec: EpisodeSpec, where: str) -> None:
        check_positive(spec)
        check_n_way(spec, len(self.by_label), where)
        need = spec.k_shot + spec.n_query
        counts = {label: len(v) for label, v in self.by_label.items()}
        what = f"k_shot + n_query = {spec.k_shot} + {spec.n_query} = {need}"
        check_counts(what, counts, need, where)

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        return spec, tuple(seeds), count

    def without_small_classes(self, spec: EpisodeSpec) -> tuple[ClassPool, list[str]]:
        """This pool minus the classes too small for `spec`, and their names."""
        need = spec.k_shot + spec.n_query
        dropped = [label for label, v in self.by_label.items() if len(v) < need]
        kept = {label: v for label, v in self.by_label.items() if len(v) >= need}
        return replace(self, by_label=kept), dropped

    @functools.cached_property
    def _sorted_labels(self) -> list[str]:
        return sorted(self.by_label)

    @functools.cached_property
    def _flat(self) -> FlatPool:
        return FlatPool.of(self.by_label)

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed`: N classes, K support and Q query examples per class."""
        rng = episode_rng(seed, index)
        labels = self._sorted_labels
        classes = [labels[i] for i in choose(rng, len(labels), spec.n_way)]
        flat = self._flat
        (starts,) = flat.starts
        k, drawn = spec.k_shot, spec.k_shot + spec.n_query
        support_at: list[int] = []
        query_at: list[int] = []
        for label in classes:
            start = starts[label]
            at = [start + i for i in choose(rng, len(self.by_label[label]), drawn)]
            support_at += at[:k]
            query_at += at[k:]
        return flat.episode(classes, support_at, query_at, seed, index)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]


@dataclass(frozen=True)
class SplitPool:
    """Support from one set of examples (e.g. a training file), queries from another (a test file).

    Both sets cover the same classes; loaders drop query texts that also occur in the support set.
    """

    support: Pool
    query: Pool
    kind: Kind = "classification"
    fixed: bool = False

    def labels(self) -> tuple[str, ...]:
        return tuple(self.support)

    def size(self) -> int:
        return sum(len(v) for v in self.support.values()) + sum(len(v) for v in self.query.values())

    def check(self, spec: EpisodeSpec, where: str) -> None:
        check_positive(spec)
        check_n_way(spec, len(self.support), where)
        check_counts(
            f"k_shot={spec.k_shot}",
            {label: len(v) for label, v in self.support.items()},
            spec.k_shot,
            f"the support set of {where}",
        )
        check_counts(
            f"n_query={spec.n_query}",
            {label: len(self.query.get(label, ())) for label in self.support},
            spec.n_query,
            f"the query set of {where}",
        )

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        return spec, tuple(seeds), count

    def without_small_classes(self, spec: EpisodeSpec) -> tuple[SplitPool, list[str]]:
        """This pool minus the classes too small for `spec`, and their names."""
        dropped = [
            label
            for label in self.support
            if len(self.support[label]) < spec.k_shot
            or len(self.query.get(label, ())) < spec.n_query
        ]
        keep = [label for label in self.support if label not in dropped]
        return SplitPool(
            {k: self.support[k] for k in keep}, {k: self.query[k] for k in keep}
        ), dropped

    @functools.cached_property
    def _flat(self) -> FlatPool:
        return FlatPool.of(self.support, self.query)

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed`: K support per class from one set, Q queries from the other."""
        rng = episode_rng(seed, index)
        labels = sorted(self.support)
        classes = [labels[i] for i in choose(rng, len(labels), spec.n_way)]
        flat = self._flat
        support_starts, query_starts = flat.starts
        support_at: list[int] = []
        query_at: list[int] = []
        for label in classes:
            start = support_starts[label]
            support_at += [start + i for i in choose(rng, len(self.support[label]), spec.k_shot)]
            start = query_starts[label]
            query_at += [start + i for i in choose(rng, len(self.query[label]), spec.n_query)]
        return flat.episode(classes, support_at, query_at, seed, index)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]


@dataclass(frozen=True)
class GroupedPool:
    """Episodes from one group at a time (e.g. one ARSC binary task): the group is drawn first."""

    groups: Mapping[str, ClassPool]
    kind: Kind = "classification"
    fixed: bool = False

    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({label for g in self.groups.values() for label in g.labels()}))

    def size(self) -> int:
        return sum(g.size() for g in self.groups.values())

    def check(self, spec: EpisodeSpec, where: str) -> None:
        check_positive(spec)
        if not self.groups:
            raise SpecError(f"{where} has no groups left to draw {spec.label} episodes from")
        problems = []
        for name, group in self.groups.items():
            try:
                group.check(spec, f"group {name}")
            except SpecError as error:
                problems.append(str(error))
        if problems:
            raise SpecError(
                f"{len(problems)} of the {len(self.groups)} groups of {where} cannot serve "
                f"{spec.label} (pass --drop-small-classes to leave them out); first: {problems[0]}"
            )

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        return spec, tuple(seeds), count

    def without_small_classes(self, spec: EpisodeSpec) -> tuple[GroupedPool, list[str]]:
        """Only the groups whose every class is large enough for `spec`, and the dropped names."""
        need = spec.k_shot + spec.n_query
        ok = {
            name: g
            for name, g in self.groups.items()
            if len(g.by_label) >= spec.n_way and min(len(v) for v in g.by_label.values()) >= need
        }
        return GroupedPool(ok), sorted(set(self.groups) - set(ok))

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed` from the group drawn by its own generator."""
        names = sorted(self.groups)
        (chosen,) = choose(_rng("group", seed, index), len(names), 1)
        return self.groups[names[chosen]].episode(spec, seed, index)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]


@dataclass(frozen=True)
class FixedEpisodes:
    """Episodes fixed by the data set (e.g. ARSC's 5-shot support files and their test sets).

    They are evaluated once, under the first seed, whatever N, K, Q and episode count was asked.
    """

    fixed_episodes: tuple[Episode, ...]
    kind: Kind = "classification"
    fixed: bool = True

    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({c for e in self.fixed_episodes for c in e.classes}))

    def size(self) -> int:
        return len({item.uid for e in self.fixed_episodes for item in (*e.support, *e.query)})

    def check(self, spec: EpisodeSpec, where: str) -> None:
        if not self.fixed_episodes:
            raise SpecError(f"{where} has no episodes")

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        first = self.fixed_episodes[0]
        shots = min(sum(1 for e in first.support if e.label == c) for c in first.classes)
        fixed_spec = EpisodeSpec(len(first.classes), shots, 0, spec.split)
        return fixed_spec, (seeds[0],), len(self.fixed_episodes)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [replace(e, seed=seeds[0], index=i) for i, e in enumerate(self.fixed_episodes)]
