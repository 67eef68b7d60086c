"""Vectorised evaluation of frozen-embedding methods.

A batch of same-shape episodes becomes index tensors into one embedding matrix, and a method
predicts every query of every episode with batched tensor operations instead of one Python
iteration per episode. Episodes drawn by a sampler carry their items' positions in the pool
(`Episode.located`), so on CPU with a cached encoder the index is built from integer arrays;
other episodes are looked up by text. Each chunk's embeddings are gathered into one reused
buffer (`GatherBuffer`). Methods offer this through an optional `score_batch(episodes)`
(`BatchScorer`); `score_in_chunks` is what the runner calls."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from benchmark.core.episodes import PositionBatch, method_rng
from benchmark.core.methods import Method, MethodContext
from benchmark.core.metrics import Scores, Tally, score_episode
from benchmark.core.types import Episode, ItemTable
from benchmark.engine.cached_encoder import CachedEncoder

EPISODE_BATCH = 256  # episodes the runner hands to `score_batch` at a time
GATHER_BYTES = 4 * 2**20  # bound on the gathered (episodes, examples, dim) embeddings


class EpisodeShape(NamedTuple):
    """What episodes must share to be stacked: support size, query size and support labels."""

    support: int
    query: int
    n_way: int


@dataclass(frozen=True)
class EpisodeIndex:
    """`b` same-shape episodes as rows of one embedding matrix, and their labels.

    `support_labels` index each episode's sorted support label names (as `label_index` does);
    `query_labels` are the gold labels in that index, -1 for a label not in the support set.
    """

    support: torch.Tensor  # (b, s) rows
    support_labels: torch.Tensor  # (b, s)
    query: torch.Tensor  # (b, q) rows
    query_labels: torch.Tensor  # (b, q)
    n_way: int
    classes: torch.Tensor  # (b, n_way) each episode's support labels as indices into `names`
    query_ids: torch.Tensor  # (b, q) each query's gold label as an index into `names`
    names: tuple[str, ...]

    def slice(self, start: int, stop: int) -> EpisodeIndex:
        """Episodes `start` to `stop` (exclusive) of this index."""
        return EpisodeIndex(
            self.support[start:stop],
            self.support_labels[start:stop],
            self.query[start:stop],
            self.query_labels[start:stop],
            self.n_way,
            self.classes[start:stop],
            self.query_ids[start:stop],
            self.names,
        )


@dataclass(frozen=True)
class EpisodeBatch:
    """`b` same-shape episodes as embeddings, what a `BatchPredict` is given; labels as in
    `EpisodeIndex`. The embeddings may live in a buffer that the next batch reuses."""

    support: torch.Tensor  # (b, s, dim)
    support_labels: torch.Tensor  # (b, s)
    query: torch.Tensor  # (b, q, dim)
    query_labels: torch.Tensor  # (b, q)
    n_way: int


BatchPredict = Callable[[EpisodeBatch], torch.Tensor]
"""A batch of episodes -> (b, q) predicted label indices."""


class GatherBuffer:
    """The embeddings of one batch after another, gathered into one reused buffer: on CPU,
    writing into memory already mapped is about 3x faster than a fresh allocation per batch."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None

    def batch(self, embeddings: torch.Tensor, index: EpisodeIndex) -> EpisodeBatch:
        """The rows `index` names, as an `EpisodeBatch` valid until the next call."""
        (b, s), q, dim = index.support.shape, index.query.shape[1], embeddings.shape[1]
        need = b * (s + q)
        buffer = self._buffer
        if (
            buffer is None
            or buffer.shape[0] < need
            or buffer.shape[1] != dim
            or buffer.dtype != embeddings.dtype
            or buffer.device != embeddings.device
        ):
            buffer = self._buffer = embeddings.new_empty(need, dim)
        support = torch.index_select(embeddings, 0, index.support.ravel(), out=buffer[: b * s])
        query = torch.index_select(embeddings, 0, index.query.ravel(), out=buffer[b * s : need])
        return EpisodeBatch(
            support.view(b, s, dim),
            index.support_labels,
            query.view(b, q, dim),
            index.query_labels,
            index.n_way,
        )


@runtime_checkable
class BatchScorer(Protocol):
    """A classification method that scores many episodes at once, as `score_episode` would."""

    def score_batch(self, episodes: Sequence[Episode]) -> Scores: ...


def episode_shape(episode: Episode) -> EpisodeShape:
    """The shape an episode is grouped by."""
    if episode.located is not None:  # drawn by a sampler: its classes are its support labels
        n_way = len(episode.classes)
    else:
        n_way = len({e.label for e in episode.support})  # type: ignore[union-attr]
    return EpisodeShape(len(episode.support), len(episode.query), n_way)


def index_episodes(
    episodes: Sequence[Episode], rows: Sequence[int], device: str | torch.device = "cpu"
) -> EpisodeIndex:
    """Index tensors of same-shape classification episodes; `rows` are the embedding-matrix rows
    of every support item, episode by episode, then of every query item.

    Labels get one id per name in sorted order across the batch (see `ranked_index`).
    """
    b = len(episodes)
    support = [item for e in episodes for item in e.support]
    query = [item for e in episodes for item in e.query]
    names = sorted({item.label for item in (*support, *query)})  # type: ignore[union-attr]
    ids = {name: i for i, name in enumerate(names)}

    def tensor(values: Sequence[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device).reshape(b, -1)

    return ranked_index(
        tensor(rows[: len(support)]),
        tensor([ids[item.label] for item in support]),  # type: ignore[union-attr]
        tensor(rows[len(support) :]),
        tensor([ids[item.label] for item in query]),  # type: ignore[union-attr]
        tuple(names),
    )


def index_located(
    episodes: Sequence[Episode], encoder: CachedEncoder
) -> tuple[torch.Tensor, EpisodeIndex]:
    """The cached encoder's matrix and the index tensors of same-shape episodes drawn from one
    item table (`Episode.located`): integer gathers, no per-text look-up."""
    table = episodes[0].located.table  # type: ignore[union-attr]
    positions = np.array([e.located.positions for e in episodes], dtype=np.int64)  # type: ignore[union-attr]
    return index_positions(table, positions, len(episodes[0].support), encoder)


def index_positions(
    table: ItemTable, positions: np.ndarray, supports: int, encoder: CachedEncoder
) -> tuple[torch.Tensor, EpisodeIndex]:
    """The cached encoder's matrix and the index tensors of episodes given as (episodes,
    support + query) positions into `table`, the first `supports` of each row the support."""
    rows = torch.from_numpy(encoder.rows_at(table.texts, positions))
    label_ids = torch.from_numpy(table.label_ids[positions])
    s = supports
    support, query = rows[:, :s].contiguous(), rows[:, s:].contiguous()  # flat per chunk
    batch = ranked_index(support, label_ids[:, :s], query, label_ids[:, s:], table.labels)
    return torch.from_numpy(encoder.matrix), batch


def ranked_index(
    support: torch.Tensor,
    support_ids: torch.Tensor,
    query: torch.Tensor,
    query_ids: torch.Tensor,
    names: tuple[str, ...],
) -> EpisodeIndex:
    """An `EpisodeIndex` from (b, s) / (b, q) rows and label ids into the sorted `names`. An
    episode's label index is the rank of a label id among the ids its support set holds (sorted
    names, as `label_index`); a query label outside the support set gets -1."""
    present = torch.zeros(support.shape[0], len(names), dtype=torch.bool, device=support.device)
    present.scatter_(1, support_ids, True)
    rank = present.cumsum(1) - 1
    query_labels = torch.where(present.gather(1, query_ids), rank.gather(1, query_ids), -1)
    n_way = int(present[0].sum())
    classes = present.nonzero()[:, 1].reshape(-1, n_way)
    return EpisodeIndex(
        support, rank.gather(1, support_ids), query, query_labels, n_way, classes, query_ids, names
    )


def embedding_rows(
    context: MethodContext, texts: Sequence[str]
) -> tuple[torch.Tensor, Sequence[int]]:
    """A matrix holding the embeddings of `texts` and each text's row in it.

    On CPU with a cached encoder that is the cache's own matrix (no copy, one look-up per
    text); otherwise the embeddings of the unique texts.
    """
    encoder = context.encoder
    if isinstance(encoder, CachedEncoder) and torch.device(context.device).type == "cpu":
        rows = encoder.rows_of(texts)
        return torch.from_numpy(encoder.matrix), rows
    unique = dict.fromkeys(texts)
    for row, text in enumerate(unique):
        unique[text] = row
    return context.embed(list(unique)), [unique[t] for t in texts]  # type: ignore[misc]


def score_batched(
    episodes: Sequence[Episode],
    context: MethodContext,
    predict: BatchPredict,
    fallback: Method | None = None,
    batchable: Callable[[EpisodeShape], bool] | None = None,
    chunk_bytes: int = GATHER_BYTES,
) -> Scores:
    """Scores of classification episodes, in order, episodes of one shape at a time.

    Each group is indexed at once, then predicted in chunks whose gathered embeddings stay
    under `chunk_bytes`; groups that `batchable` rejects are scored one by one with
    `fallback`'s `fit`/`predict`.
    """
    groups: dict[tuple[EpisodeShape, ItemTable | None], list[int]] = {}
    for i, episode in enumerate(episodes):
        table = episode.located.table if episode.located is not None else None
        groups.setdefault((episode_shape(episode), table), []).append(i)
    encoder = context.encoder
    located = isinstance(encoder, CachedEncoder) and torch.device(context.device).type == "cpu"
    accuracy, macro = [0.0] * len(episodes), [0.0] * len(episodes)
    parts = []
    for (shape, table), members in groups.items():
        if shape.query == 0:
            raise ValueError("accuracy of an empty query set is undefined")
        if batchable is not None and not batchable(shape):
            part = Scores.join(score_one(fallback, episodes[i]) for i in members)  # type: ignore[arg-type]
        else:
            chosen = [episodes[i] for i in members]
            if located and table is not None:
                embeddings, index = index_located(chosen, encoder)  # type: ignore[arg-type]
            else:
                texts = [item.text for e in chosen for item in e.support]  # type: ignore[union-attr]
                texts += [item.text for e in chosen for item in e.query]  # type: ignore[union-attr]
                embeddings, rows = embedding_rows(context, texts)
                index = index_episodes(chosen, rows, embeddings.device)
            part = batch_scores(embeddings, index, predict, chunk_bytes)
        for j, i in enumerate(members):
            accuracy[i], macro[i] = part.metric[j], part.macro_f1[j]
        parts.append(Scores([], [], part.classes))
    return Scores.join([Scores(accuracy, macro), *parts])


def batch_scores(
    embeddings: torch.Tensor, index: EpisodeIndex, predict: BatchPredict, chunk_bytes: int
) -> Scores:
    """Each indexed episode's scores (the floats `classification_scores` gives), predicted in
    chunks whose gathered embeddings stay under `chunk_bytes`, into one reused buffer."""
    (episodes, supports), queries = index.support.shape, index.query.shape[1]
    step = max(1, chunk_bytes // ((supports + queries) * embeddings.shape[1] * 4))
    buffer = GatherBuffer()
    predictions = [
        predict(buffer.batch(embeddings, index.slice(start, start + step)))
        for start in range(0, episodes, step)
    ]
    correct, predicted, gold = class_counts(torch.cat(predictions), index.query_labels, index.n_way)
    accuracy = [right / queries for right in correct.sum(-1).tolist()]  # the float of `accuracy`
    pooled = [
        torch.zeros(len(index.names), dtype=torch.long).index_add_(
            0, index.classes.ravel().cpu(), c.ravel().cpu()
        )
        for c in (correct, predicted)
    ]
    pooled.append(torch.bincount(index.query_ids.ravel().cpu(), minlength=len(index.names)))
    classes = {
        index.names[i]: Tally(*counts)
        for i, counts in enumerate(zip(*(p.tolist() for p in pooled), strict=True))
        if counts[1] or counts[2]
    }
    return Scores(accuracy, macro_f1s(correct, predicted, gold, outside_support(index)), classes)


def outside_support(index: EpisodeIndex) -> list[int]:
    """Per episode, how many distinct query labels its support set lacks."""
    b, labels = index.query_ids.shape[0], len(index.names)
    asked = torch.zeros(b, labels, dtype=torch.bool, device=index.query_ids.device)
    asked.scatter_(1, index.query_ids, True)
    asked.scatter_(1, index.classes, False)
    return asked.sum(1).tolist()


def macro_f1s(
    correct: torch.Tensor, predicted: torch.Tensor, gold: torch.Tensor, outside: Sequence[int]
) -> list[float]:
    """Each episode's macro-F1 (the float `macro_f1` gives) from its (b, n_way) counts; each of
    the episode's `outside` query labels that its support set lacks adds a class of F1 0."""
    seen = (predicted + gold > 0).tolist()
    f1 = (2 * correct.double() / (predicted + gold).clamp(min=1).double()).tolist()
    return [
        math.fsum(v for v, s in zip(row, mask, strict=True) if s) / (sum(mask) + extra)
        for row, mask, extra in zip(f1, seen, outside, strict=True)
    ]


def class_counts(
    predicted: torch.Tensor, gold: torch.Tensor, n_way: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(b, n_way) correct, predicted and gold counts of each episode's classes from (b, q)
    predicted and gold label indices (gold -1: not a support label)."""
    guessed = torch.nn.functional.one_hot(predicted, n_way)
    true = torch.nn.functional.one_hot(gold.clamp(min=0), n_way) * (gold >= 0).unsqueeze(-1)
    right = guessed * (predicted == gold).unsqueeze(-1)
    return right.sum(1), guessed.sum(1), true.sum(1)


def score_positions(
    batch: PositionBatch,
    context: MethodContext,
    predict: BatchPredict,
    chunk_bytes: int = GATHER_BYTES,
) -> Scores:
    """`score_batched` on sampled episodes given as positions (`ClassPool.positions`): on CPU
    with a cached encoder, integer gathers from the arrays without building an episode; else
    the batch's episodes through `score_batched`."""
    encoder = context.encoder
    if not isinstance(encoder, CachedEncoder) or torch.device(context.device).type != "cpu":
        return score_batched(batch.episodes(), context, predict, chunk_bytes=chunk_bytes)
    if batch.query.shape[1] == 0:
        raise ValueError("accuracy of an empty query set is undefined")
    positions = np.concatenate([batch.support, batch.query], axis=1)
    embeddings, index = index_positions(
        batch.flat.table, positions, batch.support.shape[1], encoder
    )
    return batch_scores(embeddings, index, predict, chunk_bytes)


def score_one(method: Method, episode: Episode) -> Scores:
    return score_episode("classification", method, episode, method_rng(episode.seed, episode.index))


def score_in_chunks(
    method: BatchScorer,
    episodes: Sequence[Episode],
    tick: Callable[[int], None],
    chunk: int = EPISODE_BATCH,
) -> Scores:
    """Scores through `method.score_batch`, `chunk` episodes at a time (bounded memory);
    `tick(n)` after each chunk of `n` episodes."""
    parts = []
    for start in range(0, len(episodes), chunk):
        part = episodes[start : start + chunk]
        parts.append(method.score_batch(part))
        tick(len(part))
    return Scores.join(parts)
