"""Where task data comes from: the data directory flag, the environment, or vendored copies."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from benchmark.core.errors import DataFormatError, DataNotFoundError
from benchmark.core.types import Example

DATA_DIR_ENV = "FEWSHOT_BENCH_DATA"


def resolve_data_dir(flag: str | os.PathLike[str] | None) -> Path | None:
    """The data directory: the `--data-dir` flag, else `$FEWSHOT_BENCH_DATA`, else None."""
    chosen = flag if flag else os.environ.get(DATA_DIR_ENV)
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if flag else f"${DATA_DIR_ENV}"
        raise DataNotFoundError(
            f"data directory {path} (from {origin}) does not exist; point --data-dir or "
            f"${DATA_DIR_ENV} at the folder that holds the data sets (e.g. clinc150/)"
        )
    return path


def locate(folder: str, marker: str, data_dir: Path | None, vendored: Path | None) -> Path:
    """The folder of one data set: `data_dir/folder` if given, else the vendored copy.

    `marker` is a file that must exist in the folder (a `.gz` twin also counts).
    """
    tried: list[Path] = []
    candidates = [data_dir / folder] if data_dir is not None else []
    if data_dir is None and vendored is not None:
        candidates.append(vendored)
    for candidate in candidates:
        tried.append(candidate)
        if (candidate / marker).is_file() or (candidate / f"{marker}.gz").is_file():
            return candidate
    looked = (
        f"looked for {', '.join(str(p / marker) for p in tried)}"
        if tried
        else "it is not vendored and no data directory was given"
    )
    raise DataNotFoundError(
        f"data set {folder!r} not found: {looked}. Set --data-dir or "
        f"${DATA_DIR_ENV} to the folder that contains {folder}/"
    )


def sha256_of(data: bytes) -> str:
    """Hex sha256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def deduplicate(examples: Iterable[Example]) -> tuple[list[Example], list[str]]:
    """Drop repeated (text, label) pairs and every copy of a text that carries several labels.

    After this, each text occurs once in the task, so no text can be both support and query.
    Returns the kept examples (in input order) and notes describing what was dropped.
    """
    items = list(examples)
    labels_of: dict[str, set[str]] = defaultdict(set)
    for e in items:
        labels_of[e.text].add(e.label)
    conflicting = {text for text, labels in labels_of.items() if len(labels) > 1}
    seen: set[str] = set()
    kept: list[Example] = []
    repeats = 0
    for e in items:
        if e.text in conflicting:
            continue
        if e.text in seen:
            repeats += 1
            continue
        seen.add(e.text)
        kept.append(e)
    notes: list[str] = []
    if repeats:
        notes.append(f"dropped {repeats} repeated (text, label) pair(s)")
    if conflicting:
        dropped = sum(1 for e in items if e.text in conflicting)
        notes.append(
            f"dropped {dropped} example(s) of {len(conflicting)} text(s) that carry several labels"
        )
    return kept, notes


def read_maybe_gzipped(path: Path) -> bytes:
    """Bytes of `path` (decompressed if it ends in `.gz`), or of `path.gz` decompressed when
    only that exists."""
    if not path.is_file():
        twin = path.with_name(path.name + ".gz")
        if not twin.is_file():
            raise DataNotFoundError(f"missing data file {path}")
        path = twin
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise DataFormatError(path, None, f"not a readable gzip file ({error})") from error


def decode_lines(path: Path, data: bytes) -> list[str]:
    """UTF-8 lines of `data`; an undecodable byte fails with the file, line and byte offset."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    decoded: list[str] = []
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
        try:
            decoded.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as error:
            raise DataFormatError(
                path,
                number,
                f"not valid UTF-8 at byte {error.start + 1} of the line ({error.reason})",
            ) from error
    return decoded


def read_lines(path: Path) -> list[str]:
    """UTF-8 lines of a text file (or of its `.gz` twin), decoded strictly."""
    return decode_lines(path, read_maybe_gzipped(path))


def hash_files(paths: Iterable[Path]) -> str:
    """sha256 over the (decompressed) contents of several files, in the given order."""
    h = hashlib.sha256()
    for path in paths:
        h.update(read_maybe_gzipped(path))
    return h.hexdigest()


def read_label_list(
    path: Path, known: set[str], rename: Callable[[str], str] = str
) -> tuple[str, ...]:
    """Labels listed one per line; a label absent from the data fails with file and line."""
    labels: list[str] = []
    for number, raw in enumerate(read_lines(path), start=1):
        label = rename(raw.strip())
        if not label:
            continue
        if label not in known:
            raise DataFormatError(path, number, f"label {label!r} does not occur in the data")
        labels.append(label)
    return tuple(labels)


def check_disjoint_splits(where: Path, splits: dict[str, tuple[str, ...]]) -> None:
    """Class splits must not share a label; `where` names the split files in the error."""
    names = sorted(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(splits[a]) & set(splits[b])
            if shared:
                raise DataFormatError(
                    where, None, f"splits {a!r} and {b!r} share labels {sorted(shared)[:5]}"
                )
