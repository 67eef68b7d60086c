"""Trained methods of a cell: find or check their checkpoint, or meta-train and save one."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tqdm.auto import tqdm

from benchmark.core.configs import training_options
from benchmark.core.datasource import sha256_of
from benchmark.core.methods import Method, MethodContext
from benchmark.core.types import EpisodeSpec
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.checkpoints import (
    check_identity,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from benchmark.engine.planning import Cell, RunOptions
from benchmark.engine.store import Record
from benchmark.engine.training import MetaTrainConfig, TensorBoardLogger, meta_train


def cell_train_spec(cell: Cell) -> EpisodeSpec:
    """The spec of the training episodes of a trainable cell (its own spec otherwise)."""
    config, task = cell.entry.config, cell.task
    if not isinstance(config, MetaTrainConfig):
        return cell.spec
    classes = len(task.split("train").labels()) if "train" in task.splits else cell.spec.n_way
    return config.train_spec(cell.spec, classes)


def checkpoint_identity(cell: Cell, context: MethodContext) -> Record:
    """What a checkpoint for this cell's method was (or must be) trained on: its config without
    the evaluation-only options, which one checkpoint serves at any value."""
    train_spec = cell_train_spec(cell)
    return {
        "method": cell.method,
        "method_config": training_options(cell.entry.config, cell.identity["method_config"]),
        "task": cell.task.card.name,
        "task_version": cell.task.card.version,
        "class_split": cell.task.split_name,
        "data_sha256": cell.task.data_sha256,
        "encoder": cell.identity["encoder"],
        "encoder_revision": context.encoder.revision if context.encoder is not None else None,
        "train_spec": train_spec.label,
    }


def prepare_trained(
    method: Method, cell: Cell, context: MethodContext, options: RunOptions
) -> Record:
    """Load the method's checkpoint (given, or found in the checkpoint folder) or meta-train it
    on the task's training classes and save one; returns the record's `training` field."""
    identity = checkpoint_identity(cell, context)
    path = options.checkpoint or checkpoint_path(options.checkpoints, identity)
    if options.checkpoint is not None or (path.is_file() and not options.force):
        payload = load_checkpoint(path)
        check_identity(path, payload["identity"], identity)
        method.load_checkpoint_state(payload["state"])  # type: ignore[attr-defined]
        return {"checkpoint": str(path), "reused": True, **payload["summary"]}
    config = cell.entry.config
    train_spec = cell_train_spec(cell)
    logger = None
    if options.log_dir is not None:
        logger = TensorBoardLogger(options.log_dir, path.stem)
    with tqdm(
        total=config.meta_episodes,
        unit="episode",
        desc=f"meta-training {cell.method} on {cell.task.card.name} {train_spec.label}",
        disable=not options.progress,
        leave=False,
    ) as bar:
        result = meta_train(
            method,  # type: ignore[arg-type]
            config,
            cell.spec,
            cell.task.kind,
            cell.task.split("train"),
            cell.task.splits.get("valid"),
            logger,
            bar.update,
        )
    summary = {
        "train_spec": train_spec.label,
        "steps": result.steps,
        "best_step": result.best_step,
        "best_valid": result.best_valid,
        "train_s": result.train_s,
    }
    save_checkpoint(path, identity, result.state, summary=summary, history=result.history)
    return {"checkpoint": str(path), "reused": False, **summary}


def evaluation_context(
    method: Method, cell: Cell, context: MethodContext, training: Record
) -> MethodContext:
    """The context a trained cell is scored in. When the method trained its encoder, that is the
    trained encoder, frozen and cached (in memory, and on disk under the sha256 of the
    checkpoint), which the method then reads: every test text is encoded once with the trained
    weights, never once per episode. Otherwise `context` itself."""
    tuned = getattr(method, "tuned_encoder", None)
    if tuned is None or context.encoder is None:
        return context
    digest = sha256_of(Path(training["checkpoint"]).read_bytes())[:16]
    encoder = tuned(f"{context.encoder.name}+{cell.method}", f"checkpoint-{digest}")
    if encoder is None:
        return context
    store = context.encoder.store if isinstance(context.encoder, CachedEncoder) else None
    cached = CachedEncoder(encoder, store)
    method.evaluate_with(cached)  # type: ignore[attr-defined]
    return dataclasses.replace(context, encoder=cached)
