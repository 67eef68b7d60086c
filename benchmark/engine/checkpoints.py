"""Checkpoints of meta-trained methods: saved with what they were trained on, checked on load."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmark.core.errors import BenchmarkError

CHECKPOINT_VERSION = 1


# What must match between a checkpoint and the cell that uses it.
MATCH_FIELDS = ("method", "method_config", "task", "task_version", "class_split", "encoder")
KEY_FIELDS = (*MATCH_FIELDS, "data_sha256", "encoder_revision", "train_spec")


class CheckpointMismatch(BenchmarkError, ValueError):
    """A checkpoint made for another method, config, task version, class split or encoder."""


def checkpoint_key(identity: dict[str, Any]) -> str:
    """sha256 of what a checkpoint was trained on; equal keys mean reusable checkpoints."""
    canonical = json.dumps({k: identity[k] for k in KEY_FIELDS}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def checkpoint_path(folder: Path, identity: dict[str, Any]) -> Path:
    """`folder/<task>__<method>__<train spec>__<key>.pt`."""
    method = identity["method"].replace(":", "_").replace("/", "_")
    key = checkpoint_key(identity)[:16]
    return folder / f"{identity['task']}__{method}__{identity['train_spec']}__{key}.pt"


def save_checkpoint(
    path: Path, identity: dict[str, Any], state: dict[str, Any], **info: Any
) -> None:
    """Write the state and its identity atomically (a reader sees all of it or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"checkpoint_version": CHECKPOINT_VERSION, "identity": identity, "state": state}
    payload.update(info)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".partial-", suffix=".pt")
    os.close(handle)
    try:
        torch.save(payload, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The payload of a checkpoint file; a file that is not one fails with its path."""
    if not path.is_file():
        raise BenchmarkError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:
        raise BenchmarkError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(payload, dict) or "identity" not in payload or "state" not in payload:
        raise BenchmarkError(f"{path} is not a fewshot-bench checkpoint")
    return payload


def check_identity(path: Path, saved: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse a checkpoint whose method, config, task version, split or encoder differ."""
    differences = [
        _difference(name, saved.get(name), wanted.get(name))
        for name in MATCH_FIELDS
        if saved.get(name) != wanted.get(name)
    ]
    if differences:
        raise CheckpointMismatch(
            f"checkpoint {path} does not fit this run: " + "; ".join(differences)
        )


def _difference(name: str, saved: Any, wanted: Any) -> str:
    """One mismatching field; of two configs, only the options that differ."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        keys = sorted(k for k in {*saved, *wanted} if saved.get(k) != wanted.get(k))
        return f"{name}: " + ", ".join(
            f"{k} is {saved.get(k)!r} in the checkpoint, {wanted.get(k)!r} in this run"
            for k in keys
        )
    return f"{name}: checkpoint has {saved!r}, this run needs {wanted!r}"
