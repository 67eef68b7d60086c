"""Episode sources for classification: sampled from class pools, or fixed by the data set.

Each source checks a spec before any episode is drawn and names the numbers when it cannot serve
it (N above the classes, K + Q above a class)."""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from benchmark.core.episodes import (
    Draw,
    FlatPool,
    Pool,
    PositionBatch,
    choose,
    choose_rows,
    episode_rng,
    seeded_rng,
    uniforms,
)
from benchmark.core.errors import SpecError
from benchmark.core.types import (
    Episode,
    EpisodeSpec,
    Example,
    Kind,
)


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

    def draw(self, spec: EpisodeSpec, seed: int, index: int) -> Draw:
        """The classes, support and query positions in the flat pool of episode `index` of
        `seed`: N classes, K support and Q query examples per class."""
        rng = episode_rng(seed, index)
        labels = self._sorted_labels
        classes = [labels[i] for i in choose(rng, len(labels), spec.n_way)]
        (starts,) = self._flat.starts
        k, drawn = spec.k_shot, spec.k_shot + spec.n_query
        support_at: list[int] = []
        query_at: list[int] = []
        for label in classes:
            start = starts[label]
            at = [start + i for i in choose(rng, len(self.by_label[label]), drawn)]
            support_at += at[:k]
            query_at += at[k:]
        return classes, support_at, query_at

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed` (see `draw`)."""
        return self._flat.episode(*self.draw(spec, seed, index), seed, index)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]

    def positions(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> PositionBatch:
        """`episodes(spec, seeds, count)` as position arrays (no items, no fingerprints): each
        episode's uniforms read from its generator at once, then the draws of `draw` done for
        all episodes together with NumPy (`choose_rows`)."""
        keys = [(seed, i) for seed in seeds for i in range(count)]
        n, drawn, k = spec.n_way, spec.k_shot + spec.n_query, spec.k_shot
        labels = self._sorted_labels
        u = uniforms(episode_rng, keys, n + n * drawn)
        picked = choose_rows(u[:, :n], np.full(len(keys), len(labels)))  # (episodes, n)
        (starts,) = self._flat.starts
        sizes = np.array([len(self.by_label[label]) for label in labels])
        first = np.array([starts[label] for label in labels])
        items = choose_rows(u[:, n:].reshape(-1, drawn), sizes[picked].ravel())
        at = (items + first[picked].reshape(-1, 1)).reshape(len(keys), n, drawn)
        return PositionBatch(
            self._flat,
            tuple(tuple(labels[i] for i in row) for row in picked.tolist()),
            np.ascontiguousarray(at[:, :, :k].reshape(len(keys), n * k)),
            np.ascontiguousarray(at[:, :, k:].reshape(len(keys), n * (drawn - k))),
            tuple(seed for seed, _ in keys),
            tuple(i for _, i in keys),
        )


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

    def draw(self, spec: EpisodeSpec, seed: int, index: int) -> Draw:
        """The classes and positions of episode `index` of `seed`: K support per class from one
        set, Q queries from the other."""
        rng = episode_rng(seed, index)
        labels = sorted(self.support)
        classes = [labels[i] for i in choose(rng, len(labels), spec.n_way)]
        support_starts, query_starts = self._flat.starts
        support_at: list[int] = []
        query_at: list[int] = []
        for label in classes:
            start = support_starts[label]
            support_at += [start + i for i in choose(rng, len(self.support[label]), spec.k_shot)]
            start = query_starts[label]
            query_at += [start + i for i in choose(rng, len(self.query[label]), spec.n_query)]
        return classes, support_at, query_at

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed` (see `draw`)."""
        return self._flat.episode(*self.draw(spec, seed, index), seed, index)

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]

    def positions(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> PositionBatch:
        """`episodes(spec, seeds, count)` as position arrays (no items, no fingerprints)."""
        return PositionBatch.drawn(self._flat, self.draw, spec, seeds, count)


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
        (chosen,) = choose(seeded_rng("group", seed, index), len(names), 1)
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
