"""Running one cell: build its method, train or load it, score every episode, and return the
record (a failing method becomes a failed record, never an exception)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from benchmark.core.episodes import combined_fingerprint, method_rng
from benchmark.core.methods import Method, MethodContext
from benchmark.core.metrics import METRICS, Scores, score_episode
from benchmark.core.stats import interval_summary, mean_ci
from benchmark.core.types import Encoder, Episode
from benchmark.engine.batched import EPISODE_BATCH, BatchScorer, score_in_chunks
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.devices import peak_memory_mb, reset_peak_memory, synchronize
from benchmark.engine.planning import Cell, RunOptions
from benchmark.engine.store import SCHEMA_VERSION, Record, cell_key
from benchmark.engine.trained import evaluation_context, prepare_trained


def run_or_fail(
    cell: Cell,
    context: MethodContext,
    options: RunOptions,
    tick: Callable[[int], None],
    episodes: Sequence[Episode],
) -> Record:
    uses_encoder = context.encoder is not None and cell.entry.needs_encoder
    record: Record = {
        "schema_version": SCHEMA_VERSION,
        **cell.identity,
        "key": cell_key(cell.identity),
        "metric": METRICS[cell.task.kind],
        "n_episodes": cell.episodes_per_seed * len(cell.seeds),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    hits, misses = cache_counts(context)
    reset_peak_memory(context.device)  # the peak covers meta-training too
    try:
        method = cell.entry.build(cell.entry.config, context)
        scoring = context
        if cell.entry.trainable:
            record["training"] = prepare_trained(method, cell, context, options)
            scoring = evaluation_context(method, cell, context, record["training"])
        record.update(run_cell(cell, method, scoring, tick, episodes=episodes))
        if scoring is not context:  # the trained encoder's own cache counts
            hits_now, encoded = cache_counts(scoring)
            record["training"].update(eval_cache_hits=hits_now, eval_encoded=encoded)
        record.update(status="ok", error=None)
    except Exception:
        record.update(status="failed", error=traceback.format_exc())
    if uses_encoder and record["status"] == "ok":
        after = cache_counts(context)
        record["throughput"].update(cache_hits=after[0] - hits, cache_misses=after[1] - misses)
    return record


def run_cell(
    cell: Cell,
    method: Method,
    context: MethodContext,
    tick: Callable[[int], None],
    episode_batch: int = EPISODE_BATCH,
    episodes: Sequence[Episode] | None = None,
) -> Record:
    """Scores, summary and throughput of one cell; raises if the method fails.

    A classification method with `score_batch` scores `episode_batch` episodes at a time (the
    same scores as one by one); `episode_batch=0` scores every episode with `fit`/`predict`.
    `episodes` are the cell's episodes when the sweep has sampled them already.
    """
    if episodes is None:
        episodes = cell.source.episodes(cell.spec, cell.seeds, cell.episodes_per_seed)
    if hasattr(method, "check_episodes"):  # a method may refuse a cell's episodes up front
        method.check_episodes(episodes)
    start = time.perf_counter()
    if cell.entry.needs_encoder and context.encoder is not None:
        _encode_union(context.encoder, episodes, cell.task.kind)
        synchronize(context.device)
    encoder_s = time.perf_counter() - start
    if episode_batch > 0 and cell.task.kind == "classification" and isinstance(method, BatchScorer):
        outcome = score_in_chunks(method, episodes, tick, episode_batch)
    else:
        parts = []
        for episode in episodes:
            rng = method_rng(episode.seed, episode.index)
            parts.append(score_episode(cell.task.kind, method, episode, rng))
            tick(1)
        outcome = Scores.join(parts)
    synchronize(context.device)
    wall_s = time.perf_counter() - start
    scores = outcome.metric
    queries = sum(len(e.query) for e in episodes) / len(episodes)
    summary, interval = interval_summary(
        scores, queries if cell.task.kind == "classification" else None
    )
    examples = sum(len(e.support) + len(e.query) for e in episodes)
    per_seed = [
        scores[i : i + cell.episodes_per_seed]
        for i in range(0, len(scores), cell.episodes_per_seed)
    ]
    return {
        "mean": summary.mean,
        "ci95": summary.ci95,
        "interval": interval,
        "per_episode": scores,
        "per_seed_mean": [sum(s) / len(s) for s in per_seed],
        "macro_f1": macro_summary(outcome.macro_f1),
        "per_class": outcome.per_class(),
        "span_errors": span_errors(outcome) if cell.task.kind == "tagging" else None,
        "episodes_fingerprint": combined_fingerprint(episodes),
        "throughput": {
            "wall_s": wall_s,
            "encoder_s": encoder_s,
            "method_s": wall_s - encoder_s,
            "episodes_per_s": len(episodes) / wall_s,
            "examples_per_s": examples / wall_s,
        },
        "peak_memory_mb": peak_memory_mb(context.device),
        **({"method_report": method.cell_report()} if hasattr(method, "cell_report") else {}),
    }


def macro_summary(scores: Sequence[float]) -> dict[str, object] | None:
    """Per-episode macro-F1 with its mean and CI (None for tagging: NER uses entity F1)."""
    if not scores:
        return None
    summary = mean_ci(scores)
    return {"mean": summary.mean, "ci95": summary.ci95, "per_episode": list(scores)}


def span_errors(scores: Scores) -> dict[str, object]:
    """NER: the span F1 per episode with its mean and CI, and the pooled span and type errors."""
    summary = mean_ci(scores.span_f1)
    span_f1 = {"mean": summary.mean, "ci95": summary.ci95, "per_episode": list(scores.span_f1)}
    return {"span_f1": span_f1, **scores.errors.summary()}


def cache_counts(context: MethodContext) -> tuple[int, int]:
    """Texts the context's encoder has read from the disk cache and encoded, so far."""
    encoder = context.encoder
    if not isinstance(encoder, CachedEncoder):
        return 0, 0
    return encoder.hits, encoder.misses


def _encode_union(encoder: Encoder, episodes: Sequence[Episode], kind: str) -> None:
    """Encode every text (or sentence) the episodes hold once, shortest first."""
    items = {item for episode in episodes for item in (*episode.support, *episode.query)}
    if kind == "tagging":
        encoder.encode_tokens(sorted({item.tokens for item in items}, key=len))
    else:
        encoder.encode(sorted({item.text for item in items}, key=len))
