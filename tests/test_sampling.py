"""Episode sampler: invariants, purity, pinned fingerprints, and spec errors."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from benchmark.core.episodes import choose, choose_rows, episode_rng, fingerprint
from benchmark.core.errors import SpecError
from benchmark.core.pools import ClassPool, SplitPool, group_by_label
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec, Example


def synthetic_pool(classes: int = 8, per_class: int = 10) -> dict[str, list[Example]]:
    return {
        f"c{c}": [Example(f"c{c}-{j}", f"text {c} {j}", f"c{c}") for j in range(per_class)]
        for c in range(classes)
    }


def sample_episode(pool, spec, seed, index):
    return ClassPool(pool).episode(spec, seed, index)


def sample_episodes(pool, spec, seed, count):
    return ClassPool(pool).episodes(spec, [seed], count)


def check_spec(pool, spec, where):
    ClassPool(pool).check(spec, where)


@pytest.fixture(scope="module")
def clinc():
    return TASKS.get("clinc150").load(None, 1)


@pytest.mark.parametrize(
    "spec", [EpisodeSpec(5, 1, 15), EpisodeSpec(5, 5, 15), EpisodeSpec(10, 3, 7)]
)
def test_invariants_on_clinc_test_split(clinc, spec):
    pool = clinc.split("test").by_label
    test_classes = set(clinc.split("test").labels())
    other_classes = set(clinc.split("train").labels()) | set(clinc.split("valid").labels())
    for seed in (0, 1):
        for episode in sample_episodes(pool, spec, seed, 40):
            assert len(episode.classes) == len(set(episode.classes)) == spec.n_way
            assert set(episode.classes) <= test_classes
            assert not set(episode.classes) & other_classes
            for label in episode.classes:
                assert sum(e.label == label for e in episode.support) == spec.k_shot
                assert sum(e.label == label for e in episode.query) == spec.n_query
            assert {e.label for e in episode.support + episode.query} == set(episode.classes)
            support_uids = {e.uid for e in episode.support}
            query_uids = {e.uid for e in episode.query}
            assert not support_uids & query_uids
            assert len(support_uids) + len(query_uids) == spec.n_way * (spec.k_shot + spec.n_query)
            assert not {e.text for e in episode.support} & {e.text for e in episode.query}


def test_sampled_episodes_point_at_their_items_in_the_pool_table(clinc):
    queries = [Example(f"q{c}-{j}", f"query {c} {j}", f"c{c}") for c in range(8) for j in range(4)]
    split = SplitPool(synthetic_pool(), group_by_label(queries))
    for source in (clinc.split("test"), split):
        names = sorted(source.labels())
        for episode in source.episodes(EpisodeSpec(5, 2, 3), (0, 1), 20):
            table, positions = episode.located.table, episode.located.positions
            items = episode.support + episode.query
            assert [table.texts[p] for p in positions] == [e.text for e in items]
            assert [names[table.label_ids[p]] for p in positions] == [e.label for e in items]
            assert table.n_labels == len(names)
    # An edited episode no longer matches its positions, so it carries none.
    assert dataclasses.replace(episode, query=episode.query[:-1]).located is None


def test_episode_is_pure_function_of_seed_and_index():
    pool = synthetic_pool()
    spec = EpisodeSpec(3, 2, 3)
    alone = sample_episode(pool, spec, seed=4, index=17)
    in_sequence = sample_episodes(pool, spec, seed=4, count=30)[17]
    assert alone == in_sequence
    assert sample_episode(pool, spec, 4, 17) == alone
    assert sample_episode(pool, spec, 5, 17).fingerprint != alone.fingerprint
    assert sample_episode(pool, spec, 4, 18).fingerprint != alone.fingerprint
    # The pool's key order must not matter: labels are sorted before sampling.
    reversed_pool = dict(reversed(list(pool.items())))
    assert sample_episode(reversed_pool, spec, 4, 17) == alone


def test_pinned_fingerprints_synthetic():
    episode = sample_episode(synthetic_pool(), EpisodeSpec(3, 2, 3), seed=0, index=0)
    assert episode.classes == ("c4", "c2", "c3")
    assert [e.uid for e in episode.support] == ["c4-1", "c4-4", "c2-4", "c2-2", "c3-1", "c3-5"]
    assert episode.fingerprint == "2ec2ae0c7ba5da425cd2f5d408ff488934cc8686993d1760e877ae02b321397d"


@pytest.mark.parametrize(
    ("seed", "index", "expected"),
    [
        (0, 0, "db62e9bfb8b46e39d5f55569d8cffae04648b2618c0527db76590e3c07e1bd23"),
        (0, 1, "df744f85cb6f98a68412d910448d87cdf9d6927b8c9194bbf167939671170a3b"),
        (7, 123, "40af2b61a463bb79a527136f62da081a973e180406e54a8a11297a144d35aad4"),
    ],
)
def test_pinned_fingerprints_clinc150(clinc, seed, index, expected):
    episode = sample_episode(clinc.split("test").by_label, EpisodeSpec(5, 1, 15), seed, index)
    assert episode.fingerprint == expected
    # the same episode sampled as position arrays, its fingerprint made from the arrays
    batch = clinc.split("test").positions(EpisodeSpec(5, 1, 15), (seed,), index + 1)
    assert batch.fingerprints()[index] == expected


def test_position_batches_are_the_pools_episodes(clinc):
    """ClassPool and SplitPool (SST-style support/query sets) give the same episodes, positions
    and fingerprints as position arrays as one `Episode` at a time."""
    from benchmark.core.pools import SplitPool

    by_label = clinc.split("test").by_label
    split = SplitPool(
        {k: v[:40] for k, v in by_label.items()}, {k: v[40:] for k, v in by_label.items()}
    )
    for pool in (clinc.split("test"), split):
        spec = EpisodeSpec(5, 3, 4)
        batch = pool.positions(spec, (0, 9), 25)
        episodes = pool.episodes(spec, (0, 9), 25)
        assert (
            len(batch) == 50 and batch.support.shape == (50, 15) and batch.query.shape == (50, 20)
        )
        assert batch.fingerprints() == [e.fingerprint for e in episodes]
        assert batch.episodes() == episodes
        assert [
            tuple(s) + tuple(q)
            for s, q in zip(batch.support.tolist(), batch.query.tolist(), strict=True)
        ] == [e.located.positions for e in episodes]


def test_fingerprint_fields_cannot_run_into_each_other():
    # Joined with tabs, both items would read "u<TAB>a<TAB>x<TAB>y".
    tab_in_text = fingerprint(["a"], [Example("u", "x\ty", "a")], [])
    tab_in_label = fingerprint(["a"], [Example("u", "y", "a\tx")], [])
    assert tab_in_text != tab_in_label
    one_line = fingerprint(["a"], [Example("u", "x\nquery", "a")], [])
    assert one_line != fingerprint(["a"], [Example("u", "x", "a")], [Example("u", "query", "a")])


def test_choose_gives_distinct_indices_and_uses_whole_range():
    rng = episode_rng(0, 0)
    seen: set[int] = set()
    for _ in range(200):
        picked = choose(rng, 10, 4)
        assert len(set(picked)) == 4 and all(0 <= i < 10 for i in picked)
        seen.update(picked)
    assert seen == set(range(10))


def test_n_way_larger_than_classes_names_the_numbers():
    with pytest.raises(SpecError, match=r"n_way=9 is larger than the 8 classes of my pool"):
        check_spec(synthetic_pool(), EpisodeSpec(9, 1, 1), "my pool")


def test_shots_plus_queries_larger_than_smallest_class_names_the_numbers():
    pool = synthetic_pool()
    pool["c3"] = pool["c3"][:6]
    with pytest.raises(SpecError, match=r"k_shot \+ n_query = 2 \+ 5 = 7 .* 'c3' \(6\)"):
        check_spec(pool, EpisodeSpec(3, 2, 5), "my pool")
    check_spec(pool, EpisodeSpec(3, 2, 4), "my pool")


def test_choose_rows_draws_what_choose_draws():
    """The vectorised partial Fisher-Yates gives `choose`'s indices from the same numbers."""
    rng = random.Random(3)
    for k in (1, 4, 20):
        sizes = np.array([rng.randint(k, 60) for _ in range(50)])
        u = np.array([[rng.random() for _ in range(k)] for _ in sizes])
        replay = [choose(iter_random(row), int(n), k) for row, n in zip(u, sizes, strict=True)]
        assert choose_rows(u, sizes).tolist() == replay


def iter_random(values):
    """A stand-in generator whose `random()` returns `values` in order."""
    numbers = iter(values.tolist())
    return type("Replay", (), {"random": staticmethod(lambda: next(numbers))})()
