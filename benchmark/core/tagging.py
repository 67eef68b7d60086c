"""Sequence labelling: BIO checks, Few-NERD-style greedy episode sampling, entity-level F1."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from benchmark.core.episodes import choose, episode_rng, make_episode
from benchmark.core.errors import SpecError
from benchmark.core.pools import check_counts, check_n_way, check_positive
from benchmark.core.types import Episode, EpisodeSpec, Kind, TaggedSentence

MAX_ATTEMPTS = 100


def unique_sentences(sentences: Sequence[TaggedSentence]) -> tuple[TaggedSentence, ...]:
    """The first of each repeated token sequence (repeats could be both support and query)."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for sentence in sentences:
        if sentence.tokens not in seen:
            seen.add(sentence.tokens)
            kept.append(sentence)
    return tuple(kept)


def bio_problem(previous: str, tag: str) -> str | None:
    """Why `tag` may not follow `previous` in a BIO sequence, or None when it may."""
    if tag == "O":
        return None
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or not kind:
        return f"tag {tag!r} is not O, B-<type> or I-<type>"
    if prefix == "I" and previous not in (f"B-{kind}", f"I-{kind}"):
        return f"{tag!r} follows {previous!r}; an I- tag must continue an entity of its type"
    return None


def mentions(sentence: TaggedSentence) -> Counter[str]:
    """How many entity mentions (B- tags) of each type the sentence holds."""
    return Counter(tag[2:] for tag in sentence.tags if tag.startswith("B-"))


def restrict(sentence: TaggedSentence, types: frozenset[str]) -> TaggedSentence:
    """The sentence with entities of other types re-tagged `O`, its own tags kept as
    `full_tags`."""
    tags = tuple(tag if tag == "O" or tag[2:] in types else "O" for tag in sentence.tags)
    return replace(sentence, tags=tags, full_tags=sentence.full_tags or sentence.tags)


@dataclass(frozen=True)
class TaggedPool:
    """N-way K-shot episodes over entity types, sampled greedily as in Few-NERD (Ding et al. 2021).

    N types are drawn; sentences holding at least one of them are visited in random order (those
    holding the drawn type with the fewest mentions in the pool first, so that rare types can be
    served at all). A sentence is kept while no type would exceed 2K mentions and it adds a type
    still below K, until every type has at least K. The query set is drawn the same way from the
    remaining sentences with Q..2Q. Entities of types outside the episode are tagged `O` in both
    sets. A failed pass retries with a new sentence order but the same types, so types that are
    hard to serve are never silently under-sampled.
    """

    sentences: tuple[TaggedSentence, ...]
    kind: Kind = "tagging"
    fixed: bool = False

    def labels(self) -> tuple[str, ...]:
        return tuple(sorted(self.mention_counts()))

    def size(self) -> int:
        return len(self.sentences)

    def mention_counts(self) -> Counter[str]:
        """Entity mentions per type over the pool."""
        return Counter(self._counts)

    @functools.cached_property
    def _mentions(self) -> tuple[Counter[str], ...]:
        """Each sentence's `mentions`, computed once per pool."""
        return tuple(mentions(sentence) for sentence in self.sentences)

    @functools.cached_property
    def _types(self) -> tuple[frozenset[str], ...]:
        """Each sentence's entity types, computed once per pool."""
        return tuple(sentence.types for sentence in self.sentences)

    @functools.cached_property
    def _counts(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for found in self._mentions:
            total.update(found)
        return total

    def check(self, spec: EpisodeSpec, where: str) -> None:
        check_positive(spec)
        counts = self.mention_counts()
        check_n_way(spec, len(counts), where, unit="entity types")
        need = spec.k_shot + spec.n_query
        what = f"k_shot + n_query = {spec.k_shot} + {spec.n_query} = {need}"
        check_counts(what, counts, need, where, unit="mentions")

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        return spec, tuple(seeds), count

    def without_small_classes(self, spec: EpisodeSpec) -> tuple[TaggedPool, list[str]]:
        """This pool with too-rare types re-tagged `O`, and their names."""
        need = spec.k_shot + spec.n_query
        counts = self.mention_counts()
        dropped = sorted(t for t, n in counts.items() if n < need)
        keep = frozenset(counts) - set(dropped)
        return TaggedPool(tuple(restrict(s, keep) for s in self.sentences)), dropped

    def episode(self, spec: EpisodeSpec, seed: int, index: int) -> Episode:
        """Episode `index` of `seed`; fails after MAX_ATTEMPTS draws that cannot meet the counts."""
        rng = episode_rng(seed, index)
        counts, types_of = self._counts, self._types
        types = sorted(counts)
        classes = [types[i] for i in choose(rng, len(types), spec.n_way)]
        chosen = frozenset(classes)

        def rarest_drawn_type(i: int) -> int:
            return min(counts[t] for t in types_of[i] & chosen)

        short = ""
        for _ in range(MAX_ATTEMPTS):
            order = choose(rng, len(self.sentences), len(self.sentences))
            candidates = [i for i in order if types_of[i] & chosen]
            candidates.sort(key=rarest_drawn_type)  # stable: random order within each rarity
            support, rest, reached = _greedy(candidates, self._mentions, chosen, spec.k_shot)
            if support is None:
                short = _shortfall("support", reached, spec.k_shot)
                continue
            query, _, reached = _greedy(rest, self._mentions, chosen, spec.n_query)
            if query is None:
                short = _shortfall("query", reached, spec.n_query)
                continue
            return make_episode(
                classes,
                [restrict(self.sentences[i], chosen) for i in support],
                [restrict(self.sentences[i], chosen) for i in query],
                seed,
                index,
            )
        raise SpecError(
            f"could not sample episode {index} of seed {seed} ({spec.label}, types "
            f"{', '.join(classes)}) in {MAX_ATTEMPTS} attempts: too few sentences keep every "
            f"type between K and 2K mentions in support and Q and 2Q in query (the last attempt's "
            f"{short})"
        )

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return [self.episode(spec, seed, i) for seed in seeds for i in range(count)]


def _shortfall(part: str, reached: Mapping[str, int], k: int) -> str:
    """`support reached only person 2 of the 5 mentions needed`: the types a failed draw left
    below `k`."""
    short = ", ".join(f"{t} {n}" for t, n in sorted(reached.items()) if n < k)
    return f"{part} reached only {short} of the {k} mentions needed"


def _greedy(
    candidates: Sequence[int],
    mentions_of: Sequence[Mapping[str, int]],
    types: frozenset[str],
    k: int,
) -> tuple[list[int] | None, list[int], dict[str, int]]:
    """Take sentences (indices into `mentions_of`) in order until every type has >= k mentions;
    also returns the mentions reached per type.

    As in Few-NERD, a sentence is taken only if every type stays <= 2k and it adds a mention of
    a type still below k; the others are left for the next set.
    """
    counts = dict.fromkeys(types, 0)
    taken: list[int] = []
    rest: list[int] = []
    for position, sentence in enumerate(candidates):
        found = {t: n for t, n in mentions_of[sentence].items() if t in types}
        fits = all(counts[t] + n <= 2 * k for t, n in found.items())
        if fits and any(counts[t] < k for t in found):
            taken.append(sentence)
            for t, n in found.items():
                counts[t] += n
            if all(n >= k for n in counts.values()):
                return taken, rest + list(candidates[position + 1 :]), counts
        else:
            rest.append(sentence)
    return None, rest, counts


def entities(sentences: Sequence[Sequence[str]]) -> set[tuple[str, int, int]]:
    """(type, first, last) of every entity in the sentences, positions counted over the
    sentences joined with an `O` after each: seqeval's `get_entities` for BIO tags (conlleval
    rules: an `I-` tag that follows `O` or another type opens an entity)."""
    found: set[tuple[str, int, int]] = set()
    position = 0
    for tags in sentences:
        kind, begin = "", -1  # the open entity's type and first position, if any
        for offset, tag in enumerate((*tags, "O")):
            prefix, new = tag[0], tag[2:]
            if kind and (prefix != "I" or new != kind):
                found.add((kind, begin, position + offset - 1))
                kind = ""
            if prefix == "B" or (prefix == "I" and not kind):
                kind, begin = new, position + offset
        position += len(tags) + 1
    return found


def entity_f1(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Entity-level micro F1 over the sentences of one episode: the float seqeval's
    `f1_score(gold, predicted, zero_division=0)` gives (a test checks them against each other),
    without its per-tag Python overhead."""
    if len(gold) != len(predicted) or any(
        len(g) != len(p) for g, p in zip(gold, predicted, strict=True)
    ):
        raise ValueError("gold and predicted tag sequences differ in length")
    true, guessed = entities(gold), entities(predicted)
    correct = len(true & guessed)
    precision = correct / len(guessed) if guessed else 0.0
    recall = correct / len(true) if true else 0.0
    denominator = precision + recall
    return 2.0 * precision * recall / denominator if denominator else 0.0
