"""The results store: one JSON file per cell, written atomically, read back with its schema
version checked (newer: refused; older: migrated in memory; corrupt: reported by file name)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmark.core.errors import DataFormatError

SCHEMA_VERSION = 3
IDENTITY_FIELDS = (
    "task",
    "task_version",
    "class_split",
    "eval_split",
    "data_sha256",
    "method_config",
    "encoder",
    "encoder_revision",
    "checkpoint",
    "n_way",
    "k_shot",
    "n_query",
    "episodes_per_seed",
    "seeds",
    "sampler_version",
)
PARTIAL_PREFIX = ".partial-"  # a record being written; never matches `*.json`
ADVICE = "move or delete the file to rerun its cell (runs never overwrite an unreadable record)"

Record = dict[str, Any]


class CorruptRecordError(DataFormatError):
    """A record file of the store that cannot be read; it is never overwritten or deleted."""


def cell_key(identity: Record) -> str:
    """sha256 of the fields that define a cell; equal keys mean the same experiment."""
    fields = {k: identity[k] for k in IDENTITY_FIELDS}
    if identity.get("episodes_file"):  # only then, so that every other key stays as it was
        fields["episodes_file"] = identity["episodes_file"]
    canonical = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_label(record: Record) -> str:
    """`5w-1s-15q`, or `2w-5s-fixed` when the query set is fixed by the data set."""
    query = "fixed" if record["n_query"] is None else f"{record['n_query']}q"
    return f"{record['n_way']}w-{record['k_shot']}s-{query}"


def record_path(out_dir: Path, record: Record) -> Path:
    """`out_dir/<task>__<method>__<N>w-<K>s-<Q>q__<key>.json`."""
    method = record["method"].replace(":", "_").replace("/", "_")
    return out_dir / f"{record['task']}__{method}__{spec_label(record)}__{record['key'][:16]}.json"


def write_json_atomically(path: Path, document: Any) -> None:
    """Write `document` as JSON so that a reader sees the whole file or none of it.

    It goes to a hidden temporary file in the same folder that `os.replace` then renames: a
    process killed while writing leaves at most a `.partial-*.tmp` file, which no `*.json` glob
    reads; two processes writing the same path leave one of their two complete documents.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=PARTIAL_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_record(out_dir: Path, record: Record) -> Path:
    """Write `record` to its file in `out_dir` atomically (`write_json_atomically`)."""
    path = record_path(out_dir, record)
    write_json_atomically(path, record)
    return path


def _from_v0(record: Record) -> Record:
    """Version 0 -> 1: add the fields that version 1 introduced: the task family (from the task
    registry; "custom" for unknown tasks), the protocol (fixed episodes have no `n_query`), the
    domains (none) and `classes_available` (not recorded in version 0: `n_way` is its lower
    bound)."""
    from benchmark.core.registry import TASKS

    family = TASKS.get(record["task"]).card.family if record["task"] in TASKS else "custom"
    return {
        "family": family,
        "protocol": "fixed" if record.get("n_query") is None else "sampled",
        "source_domain": None,
        "target_domain": None,
        "classes_available": record["n_way"],
        **record,
        "schema_version": 1,
    }


def _from_v1(record: Record) -> Record:
    """Version 1 -> 2: the encoder revision and the checkpoint file given to evaluate became part
    of the cell's identity; version 1 recorded no such file (`checkpoint` null). The key a
    version 1 record holds was made without them: a rerun makes the cell again."""
    return {"checkpoint": None, **record, "schema_version": 2}


def _from_v2(record: Record) -> Record:
    """Version 2 -> 3: records gained per-episode macro-F1 and per-class (per entity type)
    precision, recall and F1 (older records hold neither: null), and name the interval of
    `ci95` (older ones are Student-t)."""
    return {"macro_f1": None, "per_class": None, "interval": "t", **record, "schema_version": 3}


MIGRATIONS: dict[int, Callable[[Record], Record]] = {0: _from_v0, 1: _from_v1, 2: _from_v2}


def migrate(record: Record) -> Record:
    """`record` brought up to SCHEMA_VERSION, one migration at a time (a new dict)."""
    while record["schema_version"] < SCHEMA_VERSION:
        record = MIGRATIONS[record["schema_version"]](record)
    return record


def read_record(path: Path) -> Record:
    """One record, migrated to the current schema; a corrupt file fails with its name and line,
    a record of a newer schema is refused."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CorruptRecordError(
            path, error.lineno, f"not a valid result record: {error.msg}; {ADVICE}"
        ) from error
    except UnicodeDecodeError as error:
        raise CorruptRecordError(
            path, None, f"not a valid result record: {error}; {ADVICE}"
        ) from error
    version = record.get("schema_version") if isinstance(record, dict) else None
    if not isinstance(version, int) or version < 0:
        raise CorruptRecordError(path, None, f"not a result record (no schema_version); {ADVICE}")
    if version > SCHEMA_VERSION:
        raise DataFormatError(
            path,
            None,
            f"schema_version {version} is newer than this fewshot-bench understands "
            f"({SCHEMA_VERSION}); upgrade fewshot-bench",
        )
    try:
        record = migrate(record)
    except KeyError as error:
        raise CorruptRecordError(path, None, f"not a result record: no {error}; {ADVICE}") from None
    missing = [name for name in (*IDENTITY_FIELDS, "key", "status") if name not in record]
    if missing:
        raise CorruptRecordError(
            path, None, f"not a result record: no {', '.join(missing)}; {ADVICE}"
        )
    return record


def load_records(out_dir: Path) -> list[Record]:
    """Every record under `out_dir`, in file-name order (temporary files left out)."""
    if not out_dir.is_dir():
        raise DataFormatError(out_dir, None, "no such results directory")
    return [read_record(path) for path in record_files(out_dir)]


def record_files(out_dir: Path) -> list[Path]:
    """The record files of a store, sorted by name."""
    return sorted(p for p in out_dir.glob("*.json") if not p.name.startswith("."))


def stored_record(out_dir: Path, identity: Record) -> Record | None:
    """The stored record (finished or failed) of this cell, or None.

    A corrupt file, or one holding another cell's record, raises CorruptRecordError naming it:
    resuming never overwrites a file that it cannot read.
    """
    key = cell_key(identity)
    path = record_path(out_dir, {**identity, "key": key})
    if not path.is_file():
        return None
    record = read_record(path)
    if record.get("key") != key or record.get("status") not in ("ok", "failed"):
        raise CorruptRecordError(path, None, f"does not hold this cell's record; {ADVICE}")
    return record
