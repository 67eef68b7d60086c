"""Generic loaders for the user's own data: JSON lines, CSV/TSV, and CoNLL (token, tag per line).

`load_file_task` turns one file into a task with no loader code: every class is available to
test episodes unless a class split file or `train_classes` says otherwise.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from benchmark.core.datasource import (
    decode_lines,
    deduplicate,
    read_lines,
    read_maybe_gzipped,
    sha256_of,
)
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import ClassPool
from benchmark.core.tagging import TaggedPool, bio_problem, restrict, unique_sentences
from benchmark.core.types import EpisodeSource, Example, TaggedSentence, Task, TaskCard

FORMATS = ("jsonl", "csv", "tsv", "conll")
SUFFIX_FORMATS = {
    ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
    ".conll": "conll", ".bio": "conll", ".txt": "conll",
}  # fmt: skip


def read_jsonl_examples(
    path: Path, text_key: str = "text", label_key: str = "label", uid_prefix: str = "line"
) -> list[Example]:
    """One JSON object per line with a text and a label; blank lines are skipped."""
    examples = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, number, f"invalid JSON: {error.msg}") from error
        if not isinstance(row, dict) or text_key not in row or label_key not in row:
            raise DataFormatError(
                path, number, f"expected an object with {text_key!r} and {label_key!r} keys"
            )
        text, label = row[text_key], row[label_key]
        if not isinstance(text, str) or not text.strip():
            raise DataFormatError(path, number, f"{text_key!r} must be a non-empty string")
        if isinstance(label, bool) or not isinstance(label, str | int) or not str(label).strip():
            raise DataFormatError(
                path,
                number,
                f"{label_key!r} must be a non-empty string or an integer, not {label!r}",
            )
        examples.append(Example(f"{uid_prefix}-{number:06d}", text.strip(), str(label).strip()))
    return examples


def read_table_examples(
    path: Path,
    delimiter: str,
    text_col: str = "text",
    label_col: str = "label",
    uid_prefix: str = "row",
) -> list[Example]:
    """Rows of a CSV/TSV file with a header row; columns are chosen by name."""
    lines = decode_lines(path, read_maybe_gzipped(path))
    reader = csv.DictReader(io.StringIO("\n".join(lines)), delimiter=delimiter)
    header = reader.fieldnames or []
    for column, flag in ((text_col, "--text-col"), (label_col, "--label-col")):
        if column not in header:
            raise DataFormatError(
                path, 1, f"no column {column!r} (set {flag}); the header has {header}"
            )
    examples = []
    start = reader.line_num + 1  # the line a row starts on (a quoted field may span lines)
    for row in reader:
        extra = row.pop(None, None) or []
        missing = [column for column, value in row.items() if value is None]
        if extra or missing:
            got = len(header) + len(extra) - len(missing)
            why = (
                "quote a text that holds the delimiter"
                if extra
                else "a row with too few fields, or a quote left open"
            )
            raise DataFormatError(path, start, f"{got} fields, but the header has {len(header)} "
                                  f"({why})")  # fmt: skip
        text, label = row[text_col], row[label_col]
        if not text.strip() or not label.strip():
            raise DataFormatError(
                path, start, f"expected non-empty {text_col!r} and {label_col!r} values"
            )
        examples.append(Example(f"{uid_prefix}-{start:06d}", text.strip(), label.strip()))
        start = reader.line_num + 1
    return examples


def read_conll(path: Path, uid_prefix: str = "sent") -> list[TaggedSentence]:
    """Sentences of `token<TAB or space>tag` lines separated by blank lines; tags must be BIO."""
    sentences: list[TaggedSentence] = []
    tokens: list[str] = []
    tags: list[str] = []

    def close() -> None:
        if tokens:
            uid = f"{uid_prefix}-{len(sentences) + 1:06d}"
            sentences.append(TaggedSentence(uid, tuple(tokens), tuple(tags)))
            tokens.clear()
            tags.clear()

    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            close()
            continue
        if line.startswith("-DOCSTART-"):
            continue
        columns = line.split("\t") if "\t" in line else line.split()
        if len(columns) < 2 or not columns[-1].strip():
            raise DataFormatError(path, number, "expected 'token<TAB>tag'; this line has no tag")
        tag = columns[-1].strip()
        problem = bio_problem(tags[-1] if tags else "O", tag)
        if problem:
            raise DataFormatError(path, number, f"invalid BIO sequence: {problem}")
        tokens.append(columns[0].strip())
        tags.append(tag)
    close()
    return sentences


def detect_format(path: Path, asked: str | None) -> str:
    """The format asked for, else the one the file's suffix implies."""
    if asked:
        if asked not in FORMATS:
            raise BenchmarkError(f"unknown format {asked!r}; choose one of {', '.join(FORMATS)}")
        return asked
    suffix = path.suffix.lower() if path.suffix.lower() != ".gz" else Path(path.stem).suffix.lower()
    if suffix not in SUFFIX_FORMATS:
        raise BenchmarkError(
            f"cannot tell the format of {path.name} from its suffix; pass --format "
            f"({', '.join(FORMATS)})"
        )
    return SUFFIX_FORMATS[suffix]


def read_class_split(path: Path, known: set[str]) -> dict[str, tuple[str, ...]]:
    """A JSON object mapping train/valid/test to lists of class names."""
    try:
        data = json.loads(read_maybe_gzipped(path))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    if not isinstance(data, dict) or not set(data) <= {"train", "valid", "test"} or not data:
        raise DataFormatError(
            path, None, 'expected {"train": [...], "valid": [...], "test": [...]}'
        )
    splits = {}
    for name, labels in data.items():
        unknown = [str(label) for label in labels if str(label) not in known]
        if unknown:
            raise DataFormatError(
                path, None, f"split {name!r} names classes with no examples: {unknown}"
            )
        splits[name] = tuple(str(label) for label in labels)
    seen: dict[str, str] = {}
    for name, labels in splits.items():
        for label in labels:
            if label in seen:
                raise DataFormatError(
                    path, None, f"class {label!r} is in both {seen[label]!r} and {name!r}"
                )
            seen[label] = name
    return splits


def splits_digest(label_splits: dict[str, tuple[str, ...]]) -> str:
    """12 hex digits naming which classes each split holds (part of the cell's identity)."""
    return sha256_of(json.dumps(label_splits, sort_keys=True).encode())[:12]


def load_file_task(
    path: Path,
    fmt: str | None = None,
    text_col: str = "text",
    label_col: str = "label",
    split_file: Path | None = None,
    train_classes: Sequence[str] = (),
) -> Task:
    """A task from one user file: every class in `test` unless a split file or train classes say."""
    if not path.is_file():
        raise DataFormatError(path, None, "no such file")
    fmt = detect_format(path, fmt)
    notes: list[str] = []
    if fmt == "conll":
        sentences = read_conll(path)
        items: list = list(unique_sentences(sentences))
        if len(items) < len(sentences):
            notes.append(f"dropped {len(sentences) - len(items)} repeated sentence(s)")
        known = {t for s in items for t in s.types}
    else:
        if fmt == "jsonl":
            examples = read_jsonl_examples(path, text_col, label_col)
        else:
            examples = read_table_examples(path, "," if fmt == "csv" else "\t", text_col, label_col)
        items, notes = deduplicate(examples)
        known = {e.label for e in items}
    if not items:
        raise DataFormatError(path, None, "the file holds no examples")
    if split_file is not None:
        label_splits = read_class_split(split_file, known)
        split_name = f"file:{split_file.name}:{splits_digest(label_splits)}"
    elif train_classes:
        unknown = [c for c in train_classes if c not in known]
        if unknown:
            raise BenchmarkError(f"--train-classes names classes that {path.name} lacks: {unknown}")
        label_splits = {
            "train": tuple(train_classes),
            "test": tuple(sorted(known - set(train_classes))),
        }
        split_name = f"train-classes:{splits_digest(label_splits)}"
    else:
        label_splits = {"test": tuple(sorted(known))}
        split_name = "all-classes-test"
    splits: dict[str, EpisodeSource] = {}
    for name, labels in label_splits.items():
        if fmt == "conll":
            types = frozenset(labels)
            kept = tuple(restrict(s, types) for s in items if s.types & types)
            splits[name] = TaggedPool(kept)
        else:
            splits[name] = ClassPool.of(items, labels)
    digest = sha256_of(read_maybe_gzipped(path))
    read_as = fmt if fmt == "conll" else f"{fmt}:{text_col},{label_col}"
    card = TaskCard(
        name=path.name.split(".")[0],
        family="custom",
        version=f"file-{digest[:12]}-{read_as}",
        description=f"user data from {path}",
        license="the user's",
        citation="",
        source=str(path.resolve()),
        metric="entity-f1" if fmt == "conll" else "accuracy",
        class_splits=split_name,
    )
    return Task(card, splits, split_name, path.parent, digest, tuple(notes))
