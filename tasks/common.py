"""Helpers shared by the task families: class-split tasks, label-split files, parallel files."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from benchmark.core.datasource import (
    check_disjoint_splits,
    deduplicate,
    read_label_list,
    read_lines,
)
from benchmark.core.errors import DataFormatError
from benchmark.core.pools import ClassPool
from benchmark.core.types import EpisodeSource, Example, Task, TaskCard

SPLIT_NAMES = ("train", "valid", "test")


def class_split_task(
    card: TaskCard,
    examples: Sequence[Example],
    label_splits: Mapping[str, Sequence[str]],
    *,
    split_name: str,
    where: Path,
    data_sha256: str,
    data_path: Path,
    notes: Sequence[str] = (),
) -> Task:
    """A task whose splits are disjoint sets of classes over one deduplicated pool of examples."""
    kept, dropped = deduplicate(examples)
    check_disjoint_splits(where, {k: tuple(v) for k, v in label_splits.items()})
    present = {e.label for e in kept}
    for split, labels in label_splits.items():
        empty = [label for label in labels if label not in present]
        if empty:
            raise DataFormatError(
                where, None, f"split {split!r} names classes with no examples: {empty}"
            )
    splits: dict[str, EpisodeSource] = {
        name: ClassPool.of(kept, labels) for name, labels in label_splits.items()
    }
    return Task(card, splits, split_name, data_path, data_sha256, (*notes, *dropped))


def label_split_files(
    folder: Path, known: set[str], rename: Callable[[str], str] = str
) -> dict[str, tuple[str, ...]]:
    """`labels.{train,valid,test}.txt` of one class split (ProtAugment's layout)."""
    return {
        name: read_label_list(folder / f"labels.{name}.txt", known, rename) for name in SPLIT_NAMES
    }


def parallel_files(texts: Path, labels: Path, uid_prefix: str) -> list[Example]:
    """Line i of `texts` labelled by line i of `labels` (the `seq.in` / `label` layout)."""
    text_lines = read_lines(texts)
    label_lines = read_lines(labels)
    if len(text_lines) != len(label_lines):
        raise DataFormatError(
            labels,
            min(len(text_lines), len(label_lines)) + 1,
            f"{len(label_lines)} labels for the {len(text_lines)} lines of {texts.name}",
        )
    examples = []
    for number, (text, label) in enumerate(zip(text_lines, label_lines, strict=True), start=1):
        if not text.strip() or not label.strip():
            raise DataFormatError(texts if not text.strip() else labels, number, "empty line")
        examples.append(Example(f"{uid_prefix}-{number:05d}", text.strip(), label.strip()))
    return examples


def accuracy_card(
    family: str,
    name: str,
    description: str,
    license: str,
    citation: str,
    source: str,
    counts: Mapping[str, tuple[int, int]],
    *,
    class_splits: str,
    **extra: object,
) -> TaskCard:
    """The card of a version-1.0 classification task scored by accuracy."""
    return TaskCard(
        name=name,
        family=family,
        version="1.0",
        description=description,
        license=license,
        citation=citation,
        source=source,
        metric="accuracy",
        class_splits=class_splits,
        counts=counts,
        **extra,  # type: ignore[arg-type]
    )


def id_range(first: int, last: int) -> tuple[str, ...]:
    """Integer class ids `first..last` as strings."""
    return tuple(str(i) for i in range(first, last + 1))
