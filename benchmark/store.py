"""The results store: one JSON file per finished cell, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmark.errors import DataFormatError

SCHEMA_VERSION = 1
IDENTITY_FIELDS = (
    "task",
    "task_version",
    "class_split",
    "eval_split",
    "data_sha256",
    "method_config",
    "encoder",
    "n_way",
    "k_shot",
    "n_query",
    "episodes_per_seed",
    "seeds",
    "sampler_version",
)

Record = dict[str, Any]


def cell_key(identity: Record) -> str:
    """sha256 of the fields that define a cell; equal keys mean the same experiment."""
    canonical = json.dumps({k: identity[k] for k in IDENTITY_FIELDS}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def spec_label(record: Record) -> str:
    """`5w-1s-15q`, or `2w-5s-fixed` when the query set is fixed by the data set."""
    query = "fixed" if record["n_query"] is None else f"{record['n_query']}q"
    return f"{record['n_way']}w-{record['k_shot']}s-{query}"


def record_path(out_dir: Path, record: Record) -> Path:
    """`out_dir/<task>__<method>__<N>w-<K>s-<Q>q__<key>.json`."""
    method = record["method"].replace(":", "_").replace("/", "_")
    return out_dir / f"{record['task']}__{method}__{spec_label(record)}__{record['key'][:16]}.json"


def write_record(out_dir: Path, record: Record) -> Path:
    """Write `record` so that a reader sees the whole file or none of it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = record_path(out_dir, record)
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=".partial-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_record(path: Path) -> Record:
    """One record; a corrupt file fails with its name and line."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(
            path, error.lineno, f"not a valid result record: {error.msg}"
        ) from error
    if not isinstance(record, dict) or "schema_version" not in record:
        raise DataFormatError(path, None, "not a result record (no schema_version)")
    if record["schema_version"] > SCHEMA_VERSION:
        raise DataFormatError(
            path,
            None,
            f"schema_version {record['schema_version']} is newer than this "
            f"fewshot-bench understands ({SCHEMA_VERSION}); upgrade fewshot-bench",
        )
    return record


def load_records(out_dir: Path) -> list[Record]:
    """Every record under `out_dir`, in file-name order."""
    if not out_dir.is_dir():
        raise DataFormatError(out_dir, None, "no such results directory")
    return [read_record(path) for path in sorted(out_dir.glob("*.json"))]


def finished_record(out_dir: Path, identity: Record) -> Record | None:
    """The stored successful record of this cell, if there is one."""
    path = record_path(out_dir, {**identity, "key": cell_key(identity)})
    if not path.is_file():
        return None
    record = read_record(path)
    return record if record.get("status") == "ok" else None
