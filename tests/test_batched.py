"""Vectorised episode evaluation: the same scores as the per-episode loop on real CLINC150
episodes (512-d hashing-bow embeddings), logistic regression within half a point of the loop and of
scikit-learn, mixed shapes, and the runner with and without batching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

from baselines.probe import MAX_BATCHED_SUPPORT, fit_logistic_regression_batched
from baselines.transfer import knn_vote, knn_vote_batched
from benchmark.core.episodes import method_rng
from benchmark.core.methods import MethodContext, resolve_method
from benchmark.core.metrics import Scores, score_episode
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec
from benchmark.engine.batched import episode_shape
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.cell import run_cell
from benchmark.engine.lexical_encoder import HashingBagOfWords
from benchmark.engine.planning import RunOptions, Sweep, plan
from benchmark.perf.episodes import compare_logistic, compare_protonet

SPECS = {1: EpisodeSpec(5, 1, 15), 5: EpisodeSpec(5, 5, 15)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensor ops run far faster on one thread when other processes share the CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def context() -> MethodContext:
    return MethodContext(CachedEncoder(HashingBagOfWords(dim=512)))  # 4096 by default


@pytest.fixture(scope="module")
def source():
    return TASKS.get("clinc150").load(None, 1).split("test")


def build(name: str, context: MethodContext, **options: object):
    entry = resolve_method(name)
    return entry.build(dataclasses.replace(entry.config, **options), context)


def looped(method, episodes) -> Scores:
    return Scores.join(
        score_episode("classification", method, e, method_rng(e.seed, e.index)) for e in episodes
    )


@pytest.mark.parametrize("k_shot", [1, 5])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("protonet", {}),
        ("protonet-cosine", {}),
        ("nearest-neighbour", {}),
        ("knn", {}),
        ("knn", {"k": 3, "distance": "euclidean"}),
    ],
)
def test_batched_scores_equal_the_episode_loop(context, source, name, options, k_shot):
    method = build(name, context, **options)
    episodes = source.episodes(SPECS[k_shot], (0,), 200)
    batched = method.score_batch(episodes)
    assert batched == looped(method, episodes)
    assert 0.5 < np.mean(batched.metric) < 1.0  # hashing-bow: 0.68 (1-shot) to 0.88 (5-shot)


def test_batched_knn_vote_breaks_ties_like_the_loop():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (40, 7, 9), generator=generator).float()  # many equal scores
    labels = torch.randint(0, 4, (40, 9), generator=generator)
    for k in (1, 2, 4, 9, 20):
        batched = knn_vote_batched(scores, labels, k, 4)
        assert batched.tolist() == [knn_vote(s, y, k) for s, y in zip(scores, labels, strict=True)]


@pytest.mark.parametrize("k_shot", [1, 5])
def test_batched_logistic_regression_is_within_half_a_point(context, source, k_shot):
    method = build("logistic-regression", context)
    episodes = source.episodes(SPECS[k_shot], (0,), 60)
    batched = np.mean(method.score_batch(episodes).metric)
    assert abs(batched - np.mean(looped(method, episodes).metric)) <= 0.005
    comparison = compare_logistic(source, context, SPECS[k_shot], count=60)
    assert comparison.vectorised_accuracy == batched
    assert comparison.accuracy_gap_points <= 0.5
    assert 0.6 < batched < 1.0


def test_batched_fit_reaches_the_scikit_learn_optimum():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(3, 12, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 4, size=(3, 12)))
    y[:, :4] = torch.arange(4)  # every class present
    weight, bias = fit_logistic_regression_batched(x, y, 4, c=0.5)
    for i in range(3):
        reference = SkLogisticRegression(C=0.5, max_iter=1000, tol=1e-10).fit(x[i], y[i])
        assert np.abs(weight[i].numpy() - reference.coef_).max() < 1e-4
        centred = bias[i].numpy() - bias[i].numpy().mean()
        assert np.abs(centred - (reference.intercept_ - reference.intercept_.mean())).max() < 1e-4


def test_an_early_max_iter_scores_episode_by_episode(context, source):
    """The batched fit solves to convergence; a max_iter that stops L-BFGS early is honoured."""
    episodes = source.episodes(SPECS[5], (0,), 20)
    probe = build("logistic-regression", context, max_iter=1)
    assert probe.score_batch(episodes) == looped(probe, episodes)


def test_an_unconverged_batched_fit_warns():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(2, 8, 64)).astype(np.float32))
    y = torch.from_numpy(np.tile(np.arange(4), (2, 2)))  # separable: no optimum without penalty
    with pytest.warns(RuntimeWarning, match=r"2 of 2 problems stopped unconverged after 500"):
        fit_logistic_regression_batched(x, y, 4, c=1e12)


def test_mixed_shapes_and_large_probes_fall_back_to_the_same_scores(context, source):
    specs = [EpisodeSpec(5, 1, 15), EpisodeSpec(3, 2, 4), EpisodeSpec(10, 13, 3)]
    episodes = [e for i in range(6) for e in source.episodes(specs[i % 3], (i,), 3)]
    uneven = dataclasses.replace(episodes[0], support=episodes[0].support[:-1])  # 4 labels
    episodes.append(uneven)
    assert len({episode_shape(e) for e in episodes}) == 4
    ten_way = next(e for e in episodes if len(e.classes) == 10)
    assert episode_shape(ten_way).support > MAX_BATCHED_SUPPORT  # fitted one by one
    for name in ("protonet", "nearest-neighbour", "knn"):
        method = build(name, context)
        assert method.score_batch(episodes) == looped(method, episodes)
    probe = build("logistic-regression", context)
    batched, loop = probe.score_batch(episodes).metric, looped(probe, episodes).metric
    assert [b for b, e in zip(batched, episodes, strict=True) if len(e.classes) == 10] == [
        s for s, e in zip(loop, episodes, strict=True) if len(e.classes) == 10
    ]
    assert abs(np.mean(batched) - np.mean(loop)) <= 0.005


def test_episodes_without_pool_positions_score_the_same_by_text(context, source):
    episodes = source.episodes(SPECS[5], (3,), 60)
    by_text = [dataclasses.replace(e) for e in episodes]
    assert all(e.located is not None for e in episodes)
    assert all(e.located is None for e in by_text)
    for name in ("protonet", "nearest-neighbour", "knn", "logistic-regression"):
        method = build(name, context)
        assert method.score_batch(episodes) == method.score_batch(by_text)


def test_rows_at_encodes_only_the_texts_at_the_positions_asked_for():
    inner = HashingBagOfWords(dim=32)
    encoder = CachedEncoder(inner)
    encoder.encode(["b"])
    table = ("a", "b", "c", "d", "e")
    positions = np.array([[2, 0], [2, 1]])
    rows = encoder.rows_at(table, positions)
    assert encoder.misses == 3  # b before, then a and c
    np.testing.assert_array_equal(
        encoder.matrix[rows], inner.encode(["c", "a", "c", "b"]).reshape(2, 2, -1)
    )
    encoder.encode(["e"])  # learnt after the table's rows were remembered
    assert encoder.rows_at(table, np.array([4, 0])).tolist() == encoder.rows_of(["e", "a"])
    assert encoder.misses == 4


@pytest.mark.parametrize("name", ["protonet", "protonet-cosine", "nearest-neighbour"])
def test_scoring_position_arrays_equals_scoring_the_episodes(context, source, name):
    method = build(name, context)
    for k_shot in (1, 5):
        batch = source.positions(SPECS[k_shot], (0, 3), 30)
        assert method.score_positions(batch) == method.score_batch(batch.episodes())


def test_compare_protonet_reports_identical_scores(context, source):
    comparison = compare_protonet(source, context, count=50)
    assert comparison.identical
    assert comparison.vectorised_accuracy == comparison.reference_accuracy > 0.8
    assert comparison.speedup > 0


def test_runner_records_are_the_same_with_and_without_batching(context, tmp_path):
    methods = ("protonet", "knn", "logistic-regression", "majority")
    sweep = Sweep(("clinc150",), methods, (SPECS[5],), 20, (0, 1), encoder="hashing-bow")
    for cell in plan(sweep, RunOptions(out=tmp_path)):
        method = cell.entry.build(cell.entry.config, context)
        ticks: list[int] = []
        batched = run_cell(cell, method, context, ticks.append, episode_batch=32)
        assert sum(ticks) == 40 and len(ticks) == (2 if cell.method != "majority" else 40)
        looped_record = run_cell(cell, method, context, ticks.append, episode_batch=0)
        assert batched.pop("throughput").keys() == looped_record.pop("throughput").keys()
        del batched["peak_memory_mb"], looped_record["peak_memory_mb"]
        if cell.method == "logistic-regression":
            assert abs(batched["mean"] - looped_record["mean"]) <= 0.005
        else:
            assert batched == looped_record
