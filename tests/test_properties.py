"""Property-based tests (hypothesis) of the episode samplers over generated pools and specs."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import TypeVar

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from benchmark.core.episodes import choose, episode_rng, fingerprint
from benchmark.core.errors import SpecError
from benchmark.core.pools import ClassPool, GroupedPool, SplitPool
from benchmark.core.tagging import TaggedPool, bio_problem, entity_f1, mentions, restrict
from benchmark.core.types import Episode, EpisodeSpec, Example, TaggedSentence
from tasks.sentiment import split_pool

Pool = dict[str, tuple[Example, ...]]
V = TypeVar("V")

# Any non-empty text without lone surrogates: fingerprints encode items as UTF-8, and data files
# decoded as UTF-8 cannot hold surrogates either.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6)
SHORT = st.text(st.characters(exclude_categories=("Cs",)), max_size=3)
SEEDS = st.integers(0, 2**32 - 1)
INDICES = st.integers(0, 10_000)
WHERE = "the pool"


# ---------------------------------------------------------------- classification strategies


@st.composite
def distinct(draw: st.DrawFn, n: int) -> list[str]:
    """`n` distinct strings: arbitrary short texts made unique by a numbered suffix.

    (Drawing `n` unique arbitrary texts instead needs so many retries that hypothesis then
    mostly generates one-class pools.)
    """
    return [f"{draw(SHORT)}#{i}" for i in range(n)]


def build(sizes: Mapping[str, int], texts: Iterator[str], uids: Iterator[str]) -> Pool:
    """A pool with `sizes[label]` examples per label, taking texts and uids from the iterators."""
    return {
        label: tuple(Example(next(uids), next(texts), label) for _ in range(n))
        for label, n in sizes.items()
    }


@st.composite
def class_pools(draw: st.DrawFn, min_size: int = 1, max_classes: int = 7) -> Pool:
    """1..max_classes labels with min_size..12 examples each; all texts and uids distinct."""
    labels = draw(st.lists(TEXT, min_size=1, max_size=max_classes, unique=True))
    sizes = {label: draw(st.integers(min_size, 12)) for label in labels}
    total = sum(sizes.values())
    return build(sizes, iter(draw(distinct(total))), iter(draw(distinct(total))))


@st.composite
def split_pools(draw: st.DrawFn) -> tuple[Pool, Pool]:
    """Support and query pools over the same labels, with disjoint texts and uids."""
    labels = draw(st.lists(TEXT, min_size=1, max_size=6, unique=True))
    support_sizes = {label: draw(st.integers(1, 8)) for label in labels}
    query_sizes = {label: draw(st.integers(1, 8)) for label in labels}
    total = sum(support_sizes.values()) + sum(query_sizes.values())
    texts, uids = iter(draw(distinct(total))), iter(draw(distinct(total)))
    return build(support_sizes, texts, uids), build(query_sizes, texts, uids)


@st.composite
def grouped_pools(draw: st.DrawFn) -> dict[str, Pool]:
    """1..4 groups whose labels may repeat across groups (as in ARSC); texts, uids distinct."""
    labels = draw(st.lists(TEXT, min_size=2, max_size=6, unique=True))
    names = draw(st.lists(TEXT, min_size=1, max_size=4, unique=True))
    own = {
        name: draw(st.lists(st.sampled_from(labels), min_size=2, max_size=4, unique=True))
        for name in names
    }
    sizes = {name: {label: draw(st.integers(2, 8)) for label in own[name]} for name in names}
    total = sum(sum(s.values()) for s in sizes.values())
    texts, uids = iter(draw(distinct(total))), iter(draw(distinct(total)))
    return {name: build(sizes[name], texts, uids) for name in names}


@st.composite
def feasible_specs(draw: st.DrawFn, n_classes: int, max_shots: int) -> EpisodeSpec:
    """A spec with N <= n_classes and K + Q <= max_shots (which must be at least 2)."""
    k_shot = draw(st.integers(1, max_shots - 1))
    n_query = draw(st.integers(1, max_shots - k_shot))
    return EpisodeSpec(draw(st.integers(1, n_classes)), k_shot, n_query)


@st.composite
def boundary_specs(draw: st.DrawFn, n_classes: int, max_shots: int) -> EpisodeSpec:
    """A spec with N <= n_classes + 1 and K + Q <= max_shots + 1: at or just past the limits."""
    need = draw(st.integers(2, max(2, max_shots + 1)))
    k_shot = draw(st.integers(1, need - 1))
    return EpisodeSpec(draw(st.integers(1, n_classes + 1)), k_shot, need - k_shot)


@st.composite
def non_positive_specs(draw: st.DrawFn) -> EpisodeSpec:
    """A spec with at least one of N, K, Q below 1."""
    counts = [draw(st.integers(-2, 5)) for _ in range(3)]
    counts[draw(st.integers(0, 2))] = draw(st.integers(-2, 0))
    return EpisodeSpec(*counts)


# ---------------------------------------------------------------- classification checks


def assert_classification_episode(
    episode: Episode, spec: EpisodeSpec, support_pool: Pool, query_pool: Pool
) -> None:
    """N distinct pool classes; K support from `support_pool`, Q queries from `query_pool`."""
    classes = episode.classes
    assert len(classes) == len(set(classes)) == spec.n_way
    assert set(classes) <= set(support_pool)
    support_counts = Counter(e.label for e in episode.support)
    query_counts = Counter(e.label for e in episode.query)
    assert support_counts == dict.fromkeys(classes, spec.k_shot)
    assert query_counts == dict.fromkeys(classes, spec.n_query)
    assert all(e in support_pool[e.label] for e in episode.support)
    assert all(e in query_pool[e.label] for e in episode.query)
    support_uids = {e.uid for e in episode.support}
    query_uids = {e.uid for e in episode.query}
    assert len(support_uids) == spec.n_way * spec.k_shot
    assert len(query_uids) == spec.n_way * spec.n_query
    assert not support_uids & query_uids
    assert not {e.text for e in episode.support} & {e.text for e in episode.query}
    assert episode.fingerprint == fingerprint(classes, episode.support, episode.query)


def shuffled(pool: Mapping[str, V], rng: random.Random) -> dict[str, V]:
    """The same mapping with its keys in another order."""
    keys = list(pool)
    rng.shuffle(keys)
    return {key: pool[key] for key in keys}


def short_classes(sizes: Mapping[str, int], need: int) -> list[tuple[int, str]]:
    """(size, label) of the classes smaller than `need`, smallest first."""
    return sorted((n, label) for label, n in sizes.items() if n < need)


# ---------------------------------------------------------------- ClassPool


@settings(max_examples=120, deadline=None)
@given(by_label=class_pools(min_size=2), data=st.data(), seed=SEEDS, index=INDICES)
def test_class_pool_episode_invariants(
    by_label: Pool, data: st.DataObject, seed: int, index: int
) -> None:
    pool = ClassPool(by_label)
    spec = data.draw(feasible_specs(len(by_label), min(len(v) for v in by_label.values())))
    pool.check(spec, WHERE)
    episode = pool.episode(spec, seed, index)
    assert_classification_episode(episode, spec, by_label, by_label)
    assert (episode.seed, episode.index) == (seed, index)
    again = pool.episode(spec, seed, index)
    assert again == episode
    assert again.fingerprint == episode.fingerprint
    reordered = ClassPool(shuffled(by_label, data.draw(st.randoms())))
    assert reordered.episode(spec, seed, index) == episode


@settings(max_examples=60, deadline=None)
@given(by_label=class_pools(min_size=2), data=st.data(), seed=SEEDS, index=INDICES)
def test_class_pool_of_ignores_example_order(
    by_label: Pool, data: st.DataObject, seed: int, index: int
) -> None:
    examples = [e for members in by_label.values() for e in members]
    spec = data.draw(feasible_specs(len(by_label), min(len(v) for v in by_label.values())))
    in_order = ClassPool.of(examples).episode(spec, seed, index)
    mixed = data.draw(st.permutations(examples))
    assert ClassPool.of(mixed).episode(spec, seed, index) == in_order
    assert_classification_episode(in_order, spec, by_label, by_label)


@settings(max_examples=40, deadline=None)
@given(
    by_label=class_pools(min_size=2),
    data=st.data(),
    seeds=st.lists(SEEDS, max_size=3),
    count=st.integers(0, 4),
)
def test_class_pool_episodes_equal_single_calls(
    by_label: Pool, data: st.DataObject, seeds: list[int], count: int
) -> None:
    pool = ClassPool(by_label)
    spec = data.draw(feasible_specs(len(by_label), min(len(v) for v in by_label.values())))
    expected = [pool.episode(spec, seed, i) for seed in seeds for i in range(count)]
    assert pool.episodes(spec, seeds, count) == expected
    assert len(expected) == len(seeds) * count


@settings(max_examples=150, deadline=None)
@given(by_label=class_pools(), data=st.data(), seed=SEEDS)
def test_class_pool_check_passes_iff_servable_and_names_numbers(
    by_label: Pool, data: st.DataObject, seed: int
) -> None:
    pool = ClassPool(by_label)
    spec = data.draw(boundary_specs(len(by_label), min(len(v) for v in by_label.values())))
    need = spec.k_shot + spec.n_query
    short = short_classes({label: len(v) for label, v in by_label.items()}, need)
    try:
        pool.check(spec, WHERE)
    except SpecError as error:
        message = str(error)
        if spec.n_way > len(by_label):
            event("refused: n_way too large")
            assert f"n_way={spec.n_way} is larger than the {len(by_label)} classes" in message
            assert WHERE in message
            return
        event("refused: classes too small")
        assert short, f"check refused a servable spec: {message}"
        assert f"{spec.k_shot} + {spec.n_query} = {need}" in message
        assert f"{len(short)} class(es) have fewer than {need} examples" in message
        smallest_size, smallest = short[0]
        assert f"{smallest!r} ({smallest_size})" in message
    else:
        event("accepted")
        assert min(spec.n_way, spec.k_shot, spec.n_query) >= 1
        assert spec.n_way <= len(by_label)
        assert not short
        assert_classification_episode(pool.episode(spec, seed, 0), spec, by_label, by_label)


# ---------------------------------------------------------------- SplitPool


@settings(max_examples=100, deadline=None)
@given(pools=split_pools(), data=st.data(), seed=SEEDS, index=INDICES)
def test_split_pool_draws_support_and_queries_from_their_own_sets(
    pools: tuple[Pool, Pool], data: st.DataObject, seed: int, index: int
) -> None:
    support, query = pools
    k_shot = data.draw(st.integers(1, min(len(v) for v in support.values())))
    n_query = data.draw(st.integers(1, min(len(v) for v in query.values())))
    spec = EpisodeSpec(data.draw(st.integers(1, len(support))), k_shot, n_query)
    pool = SplitPool(support, query)
    pool.check(spec, WHERE)
    episode = pool.episode(spec, seed, index)
    assert_classification_episode(episode, spec, support, query)
    query_items = {e for members in query.values() for e in members}
    support_items = {e for members in support.values() for e in members}
    assert not set(episode.support) & query_items
    assert not set(episode.query) & support_items
    assert pool.episode(spec, seed, index) == episode
    rng = data.draw(st.randoms())
    assert SplitPool(shuffled(support, rng), shuffled(query, rng)).episode(spec, seed, index) == (
        episode
    )
    assert pool.episodes(spec, [seed], 2) == [pool.episode(spec, seed, i) for i in range(2)]


@settings(max_examples=80, deadline=None)
@given(pools=split_pools(), data=st.data())
def test_split_pool_check_passes_iff_servable(
    pools: tuple[Pool, Pool], data: st.DataObject
) -> None:
    support, query = pools
    k_shot = data.draw(st.integers(1, min(len(v) for v in support.values()) + 1))
    n_query = data.draw(st.integers(1, min(len(v) for v in query.values()) + 1))
    spec = EpisodeSpec(data.draw(st.integers(1, len(support) + 1)), k_shot, n_query)
    short_support = short_classes({k: len(v) for k, v in support.items()}, spec.k_shot)
    short_query = short_classes({k: len(v) for k, v in query.items()}, spec.n_query)
    try:
        SplitPool(support, query).check(spec, WHERE)
    except SpecError as error:
        message = str(error)
        if spec.n_way > len(support):
            event("refused: n_way too large")
            assert f"n_way={spec.n_way} is larger than the {len(support)} classes" in message
            return
        event("refused: classes too small")
        assert short_support or short_query, f"check refused a servable spec: {message}"
        value, short = (
            (f"k_shot={spec.k_shot}", short_support)
            if short_support
            else (f"n_query={spec.n_query}", short_query)
        )
        assert value in message
        assert f"{short[0][1]!r} ({short[0][0]})" in message
    else:
        event("accepted")
        assert min(spec.n_way, spec.k_shot, spec.n_query) >= 1
        assert spec.n_way <= len(support)
        assert not short_support and not short_query


def test_split_pool_check_refuses_a_label_without_queries() -> None:
    # tasks.sentiment.split_pool drops query texts seen in the support set; here that removes
    # every query of 'neg', which leaves the label out of the query pool altogether.
    support = [Example("s1", "good", "pos"), Example("s2", "bad", "neg")]
    query = [Example("q1", "fine", "pos"), Example("q2", "bad", "neg")]
    pool, removed = split_pool(support, query)
    assert removed == 1 and set(pool.query) == {"pos"}
    with pytest.raises(SpecError, match=r"'neg' \(0\)"):
        pool.check(EpisodeSpec(2, 1, 1), WHERE)
    kept, dropped = pool.without_small_classes(EpisodeSpec(1, 1, 1))
    assert dropped == ["neg"] and set(kept.support) == {"pos"}


# ---------------------------------------------------------------- GroupedPool


@settings(max_examples=80, deadline=None)
@given(groups=grouped_pools(), data=st.data(), seed=SEEDS, index=INDICES)
def test_grouped_pool_episode_comes_from_one_group(
    groups: dict[str, Pool], data: st.DataObject, seed: int, index: int
) -> None:
    n_classes = min(len(g) for g in groups.values())
    smallest = min(len(v) for g in groups.values() for v in g.values())
    spec = data.draw(feasible_specs(n_classes, smallest))
    pool = GroupedPool({name: ClassPool(g) for name, g in groups.items()})
    pool.check(spec, WHERE)
    episode = pool.episode(spec, seed, index)
    homes = [
        name
        for name, g in groups.items()
        if set(episode.classes) <= set(g)
        and all(e in g[e.label] for e in (*episode.support, *episode.query))
    ]
    assert len(homes) == 1, f"episode drawn from {len(homes)} groups"
    home = groups[homes[0]]
    assert_classification_episode(episode, spec, home, home)
    assert pool.episode(spec, seed, index) == episode
    reordered = GroupedPool(shuffled(pool.groups, data.draw(st.randoms())))
    assert reordered.episode(spec, seed, index) == episode
    assert pool.episodes(spec, [seed], 2) == [pool.episode(spec, seed, i) for i in range(2)]


@settings(max_examples=60, deadline=None)
@given(groups=grouped_pools(), data=st.data())
def test_grouped_pool_check_needs_every_group(groups: dict[str, Pool], data: st.DataObject) -> None:
    most_classes = max(len(g) for g in groups.values())
    spec = data.draw(
        boundary_specs(most_classes, max(min(map(len, g.values())) for g in groups.values()))
    )
    need = spec.k_shot + spec.n_query
    failing = [
        name
        for name, g in groups.items()
        if spec.n_way > len(g) or any(len(v) < need for v in g.values())
    ]
    pool = GroupedPool({name: ClassPool(g) for name, g in groups.items()})
    try:
        pool.check(spec, WHERE)
    except SpecError as error:
        message = str(error)
        event(f"refused: {len(failing)} of {len(groups)} groups")
        assert f"{len(failing)} of the {len(groups)} groups of {WHERE}" in message
        assert spec.label in message
    else:
        event("accepted")
        assert min(spec.n_way, spec.k_shot, spec.n_query) >= 1
        assert not failing


def test_grouped_pool_without_any_group_fails_check() -> None:
    group = ClassPool({"pos": (Example("1", "good", "pos"),), "neg": (Example("2", "bad", "neg"),)})
    spec = EpisodeSpec(2, 1, 1)
    kept, dropped = GroupedPool({"books": group}).without_small_classes(spec)
    assert dropped == ["books"] and not kept.groups
    with pytest.raises(SpecError, match="no groups"):
        kept.check(spec, WHERE)


# ---------------------------------------------------------------- TaggedPool

TYPES = ("PER", "LOC", "ORG", "work-of-art")
WORDS = ("the", "a", "Ada", "Paris", "of", "x", "y", "z")


@st.composite
def tagged_tokens(draw: st.DrawFn, types: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Tokens and valid BIO tags: 1..5 segments, each an `O` token or an entity of 1..3 tokens."""
    tags: list[str] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(("O", *types)))
        if kind == "O":
            tags.append("O")
        else:
            length = draw(st.integers(1, 3))
            tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (length - 1))
    tokens = tuple(draw(st.sampled_from(WORDS)) for _ in tags)
    return tokens, tuple(tags)


@st.composite
def tagged_pools(draw: st.DrawFn) -> TaggedPool:
    """25..50 sentences with distinct token tuples over 1..4 entity types."""
    types = draw(st.lists(st.sampled_from(TYPES), min_size=1, max_size=4, unique=True))
    rows = draw(st.lists(tagged_tokens(types), min_size=25, max_size=50, unique_by=lambda r: r[0]))
    return TaggedPool(tuple(TaggedSentence(f"s{i}", *row) for i, row in enumerate(rows)))


def bio_errors(tags: Sequence[str]) -> list[str]:
    """Every BIO problem of a tag sequence (empty when valid)."""
    previous, problems = "O", []
    for tag in tags:
        problem = bio_problem(previous, tag)
        if problem:
            problems.append(problem)
        previous = tag
    return problems


def assert_tagging_episode(episode: Episode, spec: EpisodeSpec, pool: TaggedPool) -> None:
    """Few-NERD invariants: N types; K..2K support and Q..2Q query mentions of each; BIO tags."""
    classes = episode.classes
    assert len(classes) == len(set(classes)) == spec.n_way
    assert set(classes) <= set(pool.labels())
    chosen = frozenset(classes)
    originals = {s.uid: s for s in pool.sentences}
    for part, low in ((episode.support, spec.k_shot), (episode.query, spec.n_query)):
        counts: Counter[str] = Counter()
        for sentence in part:
            assert isinstance(sentence, TaggedSentence)
            assert sentence == restrict(originals[sentence.uid], chosen)
            assert not bio_errors(sentence.tags), sentence
            assert sentence.types <= chosen
            assert mentions(sentence), f"{sentence.uid} holds no mention of {sorted(chosen)}"
            counts.update(mentions(sentence))
        assert set(counts) == chosen
        assert all(low <= n <= 2 * low for n in counts.values()), (low, counts)
        assert len({s.uid for s in part}) == len(part)
    assert not {s.uid for s in episode.support} & {s.uid for s in episode.query}
    assert episode.fingerprint == fingerprint(classes, episode.support, episode.query)


def test_tagged_pool_greedy_episodes() -> None:
    """Whenever an episode is produced it keeps the invariants; most draws must produce one."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None)
    @given(pool=tagged_pools(), data=st.data(), seed=SEEDS)
    def run(pool: TaggedPool, data: st.DataObject, seed: int) -> None:
        assert all(not bio_errors(s.tags) for s in pool.sentences)
        counts = pool.mention_counts()
        assume(min(counts.values()) >= 2)  # else check refuses every spec
        spec = data.draw(feasible_specs(len(counts), min(min(counts.values()), 12)))
        pool.check(spec, WHERE)
        first = data.draw(INDICES)
        for index in range(first, first + 4):
            try:
                episode = pool.episode(spec, seed, index)
            except SpecError as error:
                assert f"episode {index} of seed {seed} ({spec.label}, types" in str(error)
                outcomes["no episode"] += 1
                event("no episode")
                continue
            outcomes["checked"] += 1
            event("episode checked")
            assert_tagging_episode(episode, spec, pool)
            assert pool.episode(spec, seed, index).fingerprint == episode.fingerprint

    run()
    print(f"tagging episodes: {dict(outcomes)}")  # shown by pytest -s
    total = outcomes["checked"] + outcomes["no episode"]
    assert outcomes["checked"] >= 150, outcomes
    assert outcomes["checked"] >= 0.75 * total, outcomes


# Both PER mentions sit in one sentence: with K = Q = 1 the support takes it whole and no PER is
# left for the query, although check() accepts 2 mentions >= K + Q.
PER_TWICE = TaggedSentence("s0", ("Ada", "and", "Bo"), ("B-PER", "O", "B-PER"))
LOC_ONCE = (
    TaggedSentence("s1", ("in", "Rome"), ("O", "B-LOC")),
    TaggedSentence("s2", ("to", "Oslo"), ("O", "B-LOC")),
)


def test_tagged_pool_names_the_episode_it_cannot_sample() -> None:
    pool, spec = TaggedPool((PER_TWICE,)), EpisodeSpec(1, 1, 1)
    pool.check(spec, WHERE)
    with pytest.raises(
        SpecError, match=r"could not sample episode 7 of seed 3 \(1w-1s-1q, types PER\)"
    ):
        pool.episode(spec, 3, 7)
    with pytest.raises(SpecError, match=r"query reached only PER 0 of the 1 mentions needed\)"):
        pool.episode(spec, 3, 7)


def test_tagged_pool_keeps_the_types_it_drew() -> None:
    """A drawn type that cannot be served is refused by name, never silently swapped out."""
    pool, spec = TaggedPool((PER_TWICE, *LOC_ONCE)), EpisodeSpec(1, 1, 1)
    pool.check(spec, WHERE)
    drawn: Counter[str] = Counter()
    refused = 0
    for index in range(60):
        try:
            drawn.update(pool.episode(spec, 0, index).classes)
        except SpecError as error:
            assert "types PER" in str(error)
            refused += 1
    assert refused > 0 and drawn["LOC"] == 60 - refused and set(drawn) <= {"LOC"}


@settings(max_examples=30, deadline=None)
@given(pool=tagged_pools(), kept=st.frozensets(st.sampled_from(TYPES)))
def test_restrict_keeps_bio_and_only_kept_mentions(pool: TaggedPool, kept: frozenset[str]) -> None:
    for sentence in pool.sentences:
        narrowed = restrict(sentence, kept)
        assert narrowed.tokens == sentence.tokens and narrowed.uid == sentence.uid
        assert not bio_errors(narrowed.tags)
        assert mentions(narrowed) == {t: n for t, n in mentions(sentence).items() if t in kept}


# ---------------------------------------------------------------- every source

TINY: Pool = {label: (Example(f"{label}1", f"{label} one", label),) for label in ("a", "b")}
SOURCES = {
    "class": ClassPool(TINY),
    "split": SplitPool(TINY, TINY),
    "grouped": GroupedPool({"g": ClassPool(TINY)}),
    "tagged": TaggedPool((TaggedSentence("s0", ("Ada", "went"), ("B-PER", "O")),)),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
@settings(max_examples=15, deadline=None)
@given(spec=non_positive_specs())
def test_check_refuses_counts_below_one(name: str, spec: EpisodeSpec) -> None:
    counts = (("n_way", spec.n_way), ("k_shot", spec.k_shot), ("n_query", spec.n_query))
    field, value = next((f, v) for f, v in counts if v < 1)
    with pytest.raises(SpecError, match=f"^{field} must be at least 1, got {value}$"):
        SOURCES[name].check(spec, WHERE)


# ---------------------------------------------------------------- choose


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), data=st.data(), seed=SEEDS, index=INDICES)
def test_choose_returns_distinct_indices_in_range(
    n: int, data: st.DataObject, seed: int, index: int
) -> None:
    k = data.draw(st.integers(0, n))
    picked = choose(episode_rng(seed, index), n, k)
    assert len(picked) == len(set(picked)) == k
    assert all(0 <= i < n for i in picked)
    assert choose(episode_rng(seed, index), n, k) == picked
    if k < n:  # a partial Fisher-Yates shuffle: drawing one more keeps the first k
        assert choose(episode_rng(seed, index), n, k + 1)[:k] == picked
    if k == n:
        assert sorted(picked) == list(range(n))


TAG_SEQUENCES = st.lists(
    st.lists(st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-ORG"]), max_size=12),
    min_size=1,
    max_size=5,
)


@settings(max_examples=400, deadline=None)
@given(gold=TAG_SEQUENCES, data=st.data())
def test_entity_f1_is_seqeval_exactly(gold: list[list[str]], data: st.DataObject) -> None:
    """Our entity F1 is the very float seqeval gives, on valid and invalid BIO alike (a
    predicted `I-` after `O` or after another type opens an entity, as in conlleval)."""
    import warnings

    from seqeval.metrics import f1_score

    predicted = [
        data.draw(st.lists(st.sampled_from(["O", "B-PER", "I-PER", "I-LOC", "B-ORG"]),
                           min_size=len(g), max_size=len(g)))
        for g in gold
    ]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = float(f1_score(gold, predicted, zero_division=0))
    assert entity_f1(gold, predicted) == expected
    assert entity_f1(gold, gold) == (1.0 if any("-" in t for g in gold for t in g) else 0.0)
