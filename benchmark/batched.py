"""Vectorised evaluation of frozen-embedding methods.

A batch of same-shape episodes becomes index tensors into one embedding matrix, and a method
predicts every query of every episode with batched tensor operations instead of one Python
iteration per episode. Methods offer this through an optional `score_batch(episodes)`
(`BatchScorer`); `score_in_chunks` is what the runner calls, and `compare_protonet` /
`compare_logistic` time the vectorised path against per-episode evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from benchmark.encoders import CachedEncoder
from benchmark.methods import Method, MethodContext, resolve_method
from benchmark.metrics import score_episode
from benchmark.sampling import method_rng
from benchmark.types import Episode, EpisodeSource, EpisodeSpec

EPISODE_BATCH = 256  # episodes the runner hands to `score_batch` at a time
GATHER_BYTES = 4 * 2**20  # bound on the gathered (episodes, examples, dim) embeddings
PERF_SPEC = EpisodeSpec(5, 5, 15)  # the spec `compare_*` time by default


class EpisodeShape(NamedTuple):
    """What episodes must share to be stacked: support size, query size and support labels."""

    support: int
    query: int
    n_way: int


@dataclass(frozen=True)
class EpisodeIndex:
    """`b` same-shape episodes as rows of one embedding matrix.

    `support_labels` index each episode's sorted support label names (as `label_index` does);
    `query_labels` are the gold labels in that index, -1 for a label not in the support set.
    """

    support: torch.Tensor  # (b, s) rows
    support_labels: torch.Tensor  # (b, s)
    query: torch.Tensor  # (b, q) rows
    query_labels: torch.Tensor  # (b, q)
    n_way: int


def gather(embeddings: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """`embeddings[rows]` (rows of any shape), by an embedding look-up: the same values, and on
    CPU about 15x faster than advanced indexing for (episodes, examples) index tensors."""
    return torch.nn.functional.embedding(rows, embeddings)


BatchPredict = Callable[[torch.Tensor, EpisodeIndex], torch.Tensor]
"""(embeddings, batch) -> (b, q) predicted label indices."""


@runtime_checkable
class BatchScorer(Protocol):
    """A classification method that scores many episodes at once, as `score_episode` would."""

    def score_batch(self, episodes: Sequence[Episode]) -> list[float]: ...


def episode_shape(episode: Episode) -> EpisodeShape:
    """The shape an episode is grouped by."""
    n_way = len({e.label for e in episode.support})  # type: ignore[union-attr]
    return EpisodeShape(len(episode.support), len(episode.query), n_way)


def index_episodes(
    episodes: Sequence[Episode], rows: Sequence[int], device: str | torch.device = "cpu"
) -> EpisodeIndex:
    """Index tensors of same-shape classification episodes; `rows` are the embedding-matrix rows
    of every support item, episode by episode, then of every query item.

    Labels get one id per name in sorted order across the batch; an episode's label index is
    the rank of a label id among the ids its support set holds (sorted names, as `label_index`).
    """
    b = len(episodes)
    support = [item for e in episodes for item in e.support]
    query = [item for e in episodes for item in e.query]
    names = sorted({item.label for item in support})  # type: ignore[union-attr]
    ids = {name: i for i, name in enumerate(names)}
    absent = len(names)  # the id of query labels no support set holds

    def tensor(values: Sequence[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.long, device=device).reshape(b, -1)

    support_ids = tensor([ids[item.label] for item in support])  # type: ignore[union-attr]
    query_ids = tensor([ids.get(item.label, absent) for item in query])  # type: ignore[union-attr]
    present = torch.zeros(b, absent + 1, dtype=torch.bool, device=device)
    present.scatter_(1, support_ids, True)
    rank = present.cumsum(1) - 1
    query_labels = torch.where(present.gather(1, query_ids), rank.gather(1, query_ids), -1)
    return EpisodeIndex(
        tensor(rows[: len(support)]),
        rank.gather(1, support_ids),
        tensor(rows[len(support) :]),
        query_labels,
        n_way=int(present[0].sum()),
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
) -> list[float]:
    """Accuracy of each classification episode, in order, episodes of one shape at a time.

    Each group is cut so its gathered embeddings stay under `chunk_bytes`; groups that
    `batchable` rejects are scored one by one with `fallback`'s `fit`/`predict`.
    """
    groups: dict[EpisodeShape, list[int]] = {}
    for i, episode in enumerate(episodes):
        groups.setdefault(episode_shape(episode), []).append(i)
    scores = [0.0] * len(episodes)
    for shape, members in groups.items():
        if shape.query == 0:
            raise ValueError("accuracy of an empty query set is undefined")
        if batchable is not None and not batchable(shape):
            for i in members:
                scores[i] = _score_one(fallback, episodes[i])  # type: ignore[arg-type]
            continue
        dim = context.encoder.dim  # type: ignore[union-attr]
        step = max(1, chunk_bytes // ((shape.support + shape.query) * dim * 4))
        for start in range(0, len(members), step):
            part = members[start : start + step]
            chosen = [episodes[i] for i in part]
            texts = [item.text for e in chosen for item in e.support]  # type: ignore[union-attr]
            texts += [item.text for e in chosen for item in e.query]  # type: ignore[union-attr]
            embeddings, rows = embedding_rows(context, texts)
            batch = index_episodes(chosen, rows, embeddings.device)
            correct = (predict(embeddings, batch) == batch.query_labels).sum(-1).tolist()
            for i, right in zip(part, correct, strict=True):
                scores[i] = right / shape.query  # the same float as `accuracy`
    return scores


def _score_one(method: Method, episode: Episode) -> float:
    return score_episode("classification", method, episode, method_rng(episode.seed, episode.index))


def score_in_chunks(
    method: BatchScorer,
    episodes: Sequence[Episode],
    tick: Callable[[int], None],
    chunk: int = EPISODE_BATCH,
) -> list[float]:
    """Per-episode accuracy through `method.score_batch`, `chunk` episodes at a time (bounded
    memory); `tick(n)` after each chunk of `n` episodes."""
    scores: list[float] = []
    for start in range(0, len(episodes), chunk):
        part = episodes[start : start + chunk]
        scores.extend(method.score_batch(part))
        tick(len(part))
    return scores


@dataclass(frozen=True)
class Comparison:
    """Two ways to score the same sampled episodes: seconds (sampling apart) and accuracies."""

    episodes: int
    sampling_s: float
    vectorised_s: float
    reference_s: float
    vectorised_accuracy: float
    reference_accuracy: float
    identical: bool  # every per-episode score equal

    @property
    def speedup(self) -> float:
        """Reference over vectorised time, sampling included in both."""
        return (self.sampling_s + self.reference_s) / (self.sampling_s + self.vectorised_s)

    @property
    def scoring_speedup(self) -> float:
        """Reference over vectorised time, scoring only."""
        return self.reference_s / self.vectorised_s

    @property
    def accuracy_gap_points(self) -> float:
        """|vectorised - reference| mean accuracy, in percentage points."""
        return 100 * abs(self.vectorised_accuracy - self.reference_accuracy)


def _compare(
    source: EpisodeSource,
    spec: EpisodeSpec,
    count: int,
    seed: int,
    vectorised: Callable[[Sequence[Episode]], list[float]],
    reference: Callable[[Episode], float],
) -> Comparison:
    start = time.perf_counter()
    episodes = source.episodes(spec, (seed,), count)
    sampling_s = time.perf_counter() - start
    batched = vectorised(episodes)
    vectorised_s = time.perf_counter() - start - sampling_s
    start = time.perf_counter()
    looped = [reference(e) for e in episodes]
    reference_s = time.perf_counter() - start
    return Comparison(
        count,
        sampling_s,
        vectorised_s,
        reference_s,
        float(np.mean(batched)),
        float(np.mean(looped)),
        batched == looped,
    )


def compare_protonet(
    source: EpisodeSource,
    context: MethodContext,
    spec: EpisodeSpec = PERF_SPEC,
    count: int = 1000,
    seed: int = 0,
) -> Comparison:
    """ProtoNet on `count` episodes of `source`: `score_batch` against the per-episode
    `fit`/`predict` loop. Encode the episodes' texts into a cached encoder first."""
    entry = resolve_method("protonet")
    method = entry.build(entry.config, context)
    return _compare(source, spec, count, seed, method.score_batch, lambda e: _score_one(method, e))


def compare_logistic(
    source: EpisodeSource,
    context: MethodContext,
    spec: EpisodeSpec = PERF_SPEC,
    count: int = 1000,
    seed: int = 0,
) -> Comparison:
    """The batched logistic-regression probe against scikit-learn's `LogisticRegression(C=c)`
    (multinomial, L-BFGS) fitted per episode, on `count` episodes of `source`."""
    from sklearn.linear_model import LogisticRegression  # a test extra, needed here only

    entry = resolve_method("logistic-regression")
    method = entry.build(entry.config, context)

    def reference(episode: Episode) -> float:
        support = context.embed([e.text for e in episode.support]).cpu().numpy()  # type: ignore[union-attr]
        query = context.embed([e.text for e in episode.query]).cpu().numpy()  # type: ignore[union-attr]
        model = LogisticRegression(C=entry.config.c, max_iter=1000)
        model.fit(support, [e.label for e in episode.support])  # type: ignore[union-attr]
        predicted = model.predict(query)
        return float(np.mean(predicted == [e.label for e in episode.query]))  # type: ignore[union-attr]

    return _compare(source, spec, count, seed, method.score_batch, reference)
