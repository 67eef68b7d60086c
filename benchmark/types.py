"""Core value types shared by tasks, the sampler, methods and the runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Example:
    """One labelled text. `uid` is stable across loads of the same task version."""

    uid: str
    text: str
    label: str


@dataclass(frozen=True)
class TaskCard:
    """Metadata of a task, readable without loading its data."""

    name: str
    family: str
    version: str
    description: str
    license: str
    citation: str
    source: str
    metric: str
    class_splits: str
    languages: tuple[str, ...] = ("en",)
    vendored: bool = False


@dataclass(frozen=True)
class Task:
    """A loaded task: examples plus the class split that says which labels each split may use."""

    card: TaskCard
    examples: tuple[Example, ...]
    splits: Mapping[str, tuple[str, ...]]
    split_name: str
    data_path: Path
    data_sha256: str
    notes: tuple[str, ...] = ()

    def pool(self, split: str) -> dict[str, tuple[Example, ...]]:
        """Examples of one split grouped by label, labels and examples in a canonical order."""
        if split not in self.splits:
            raise KeyError(
                f"task {self.card.name!r} has no split {split!r}; it has {sorted(self.splits)}"
            )
        labels = set(self.splits[split])
        grouped: dict[str, list[Example]] = {label: [] for label in sorted(labels)}
        for example in self.examples:
            if example.label in labels:
                grouped[example.label].append(example)
        return {
            label: tuple(sorted(items, key=lambda e: e.uid)) for label, items in grouped.items()
        }


@dataclass(frozen=True)
class TaskEntry:
    """What the task registry holds: the card, and a loader taking (data_dir or None, split_id)."""

    card: TaskCard
    load: Callable[[Path | None, int], Task]
    split_ids: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class EpisodeSpec:
    """How to cut episodes: N-way, K-shot, Q queries per class, from one split of a task."""

    n_way: int
    k_shot: int
    n_query: int
    split: str = "test"

    @property
    def label(self) -> str:
        """Short human label such as `5w-1s-15q`."""
        return f"{self.n_way}w-{self.k_shot}s-{self.n_query}q"


@dataclass(frozen=True)
class Episode:
    """One N-way K-shot episode. `classes` is the sampled class order."""

    classes: tuple[str, ...]
    support: tuple[Example, ...]
    query: tuple[Example, ...]
    fingerprint: str
    index: int = field(default=0)
    seed: int = field(default=0)
