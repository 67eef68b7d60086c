"""Core value types shared by tasks, samplers, methods and the runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, Union

import numpy as np

Kind = Literal["classification", "tagging"]


@dataclass(frozen=True)
class Example:
    """One labelled text. `uid` is stable across loads of the same task version.

    `spans` names character ranges of `text`, e.g. `("head", 4, 15)` for a relation's head entity.
    """

    uid: str
    text: str
    label: str
    spans: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class TaggedSentence:
    """A tokenised sentence with one BIO tag per token (`O`, `B-type`, `I-type`). In an
    episode, `full_tags` are the data set's own tags when `tags` re-tag the types the episode
    left out `O` (None otherwise); they are not part of equality, hashing or fingerprints."""

    uid: str
    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    full_tags: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    @property
    def types(self) -> frozenset[str]:
        """Entity types that occur in the sentence."""
        return frozenset(tag[2:] for tag in self.tags if tag != "O")


Item = Union[Example, TaggedSentence]  # noqa: UP007 (a runtime alias, also used with isinstance)


@dataclass(frozen=True)
class EpisodeSpec:
    """How to cut episodes: N-way, K-shot, Q queries per class, from one split of a task.

    For tagging tasks N counts entity types, and support and query sets each hold every sampled
    type K..2K (resp. Q..2Q) times, as in Few-NERD's greedy sampling.
    """

    n_way: int
    k_shot: int
    n_query: int
    split: str = "test"

    @property
    def label(self) -> str:
        """Short human label such as `5w-1s-15q`."""
        return f"{self.n_way}w-{self.k_shot}s-{self.n_query}q"


@dataclass(frozen=True, eq=False)
class ItemTable:
    """The examples of a pool in one flat order: their texts, and each one's label as an index
    into the pool's sorted label names. Episodes drawn from the pool point into it by position
    (`Episode.located`), so vectorised scorers can use integer arrays instead of text look-ups.
    """

    texts: tuple[str, ...]
    label_ids: np.ndarray  # (len(texts),) int64
    labels: tuple[str, ...]  # sorted label names

    @property
    def n_labels(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class Located:
    """An episode's support items, then its query items, as positions in `table`."""

    table: ItemTable
    positions: tuple[int, ...]


@dataclass(frozen=True)
class Episode:
    """One episode. `classes` is the sampled class (or entity type) order.

    `located` is set only by the sampler that drew the episode (see `located_episode`); it is
    not an `__init__` argument, so `dataclasses.replace` and hand-built episodes never carry a
    stale one.
    """

    classes: tuple[str, ...]
    support: tuple[Item, ...]
    query: tuple[Item, ...]
    fingerprint: str
    index: int = field(default=0)
    seed: int = field(default=0)
    located: Located | None = field(default=None, init=False, compare=False, repr=False)


def located_episode(episode: Episode, located: Located) -> Episode:
    """`episode`, pointing into the item table it was drawn from."""
    object.__setattr__(episode, "located", located)
    return episode


class EpisodeSource(Protocol):
    """Where the episodes of one split come from: sampled from pools, or fixed by the data set.

    A split that meta-trained methods train on also needs `episode(spec, seed, index)` (one
    sampled episode; the pools have it); `without_small_classes(spec)` (the source minus the
    classes too small for `spec`, and their names) is optional, for `--drop-small-classes`.
    """

    kind: Kind
    fixed: bool

    def labels(self) -> tuple[str, ...]:
        """Classes (or entity types) available to episodes."""
        ...

    def size(self) -> int:
        """Number of distinct examples (or sentences) in the split."""
        ...

    def check(self, spec: EpisodeSpec, where: str) -> None:
        """Raise `SpecError` naming the numbers when `spec` cannot be served."""
        ...

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        """The spec, seeds and episode count the episodes will really have (fixed episodes
        ignore the asked ones)."""
        ...

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        """Episodes `0..count-1` of each seed (fixed sources: their episodes, once)."""
        ...


@dataclass(frozen=True)
class TaskCard:
    """Metadata of a task, readable without loading its data.

    `counts` maps each split to (classes, examples) for the default class split; a test checks
    them against the loaded data. `source_domain`/`target_domain` are set for domain-shift tasks.
    """

    name: str
    family: str
    version: str
    description: str
    license: str
    citation: str
    source: str
    metric: str
    class_splits: str
    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    source_domain: str | None = None
    target_domain: str | None = None
    languages: tuple[str, ...] = ("en",)
    vendored: bool = False


@dataclass(frozen=True)
class Task:
    """A loaded task: the episode source of each split, and where its data came from."""

    card: TaskCard
    splits: Mapping[str, EpisodeSource]
    split_name: str
    data_path: Path
    data_sha256: str
    notes: tuple[str, ...] = ()

    @property
    def kind(self) -> Kind:
        """Classification or tagging (every split of a task has the same kind)."""
        return next(iter(self.splits.values())).kind

    def split(self, name: str) -> EpisodeSource:
        """The episode source of split `name`, or an error listing the splits there are."""
        if name not in self.splits:
            from benchmark.core.errors import SpecError

            raise SpecError(
                f"task {self.card.name!r} has no {name!r} split; it has {', '.join(self.splits)}"
            )
        return self.splits[name]


@dataclass(frozen=True)
class TaskEntry:
    """What the task registry holds: the card, and a loader taking (data_dir or None, split_id)."""

    card: TaskCard
    load: Callable[[Path | None, int], Task]
    split_ids: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class EncoderOptions:
    """Run-time options every encoder accepts."""

    device: str = "cpu"
    batch_size: int = 64
    progress: bool = False


class Encoder(Protocol):
    """Maps texts to a float32 array of shape (len(texts), dim), and tokenised sentences to one
    (len(tokens), dim) array of word vectors each."""

    name: str
    revision: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]: ...
