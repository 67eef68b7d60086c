"""Token-level few-shot NER methods on frozen contextual word vectors (a middle layer of the
encoder, no fine-tuning): the `-frozen` forms of ProtoBERT, NNShot and StructShot (NNShot
emissions decoded with Viterbi over abstract tag transitions). The forms trained as their papers
train them are in `baselines.ner_training`."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from baselines.frozen import Distance, similarity
from benchmark.core.methods import METHODS, MethodContext, MethodEntry
from benchmark.core.types import Episode, TaggedSentence
from benchmark.engine.training import MetaTrainConfig


@dataclass(frozen=True)
class TokenMethodConfig:
    """Distance between word vectors."""

    distance: Distance = "euclidean"


class WordVectors(Protocol):
    """What gives word vectors: a method context, or a trained method's own encoder."""

    def embed_tokens(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class NearestTokenKey:
    """Tags each query word with the tag of its nearest key (a tag prototype or a support word)."""

    context: WordVectors
    tags: list[str]
    keys: torch.Tensor
    key_tags: torch.Tensor
    distance: Distance

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        vectors = self.context.embed_tokens(sentences)
        if not vectors:
            return []
        best = similarity(torch.cat(vectors), self.keys, self.distance).argmax(-1)
        tags = [self.tags[i] for i in self.key_tags[best].tolist()]
        ends = list(itertools.accumulate(len(v) for v in vectors))
        return [tags[end - len(v) : end] for v, end in zip(vectors, ends, strict=True)]


def support_words(
    context: WordVectors, support: Sequence[TaggedSentence]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Sorted tag names, every support word's vector (from `context`), and each word's tag
    index."""
    tags = sorted({tag for s in support for tag in s.tags})
    position = {tag: i for i, tag in enumerate(tags)}
    vectors = torch.cat(context.embed_tokens([s.tokens for s in support]))
    labels = torch.tensor([position[tag] for s in support for tag in s.tags], device=vectors.device)
    return tags, vectors, labels


class TokenPrototypes:
    """ProtoBERT (Few-NERD's baseline) on a frozen encoder: one prototype per BIO tag."""

    def __init__(self, config: TokenMethodConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> NearestTokenKey:
        tags, vectors, labels = support_words(self.context, support)
        prototypes = torch.zeros(len(tags), vectors.shape[1], device=vectors.device)
        prototypes.index_add_(0, labels, vectors)
        prototypes /= torch.bincount(labels, minlength=len(tags)).unsqueeze(1)
        index = torch.arange(len(tags), device=vectors.device)
        return NearestTokenKey(self.context, tags, prototypes, index, self.config.distance)


class NNShot:
    """NNShot (Yang and Katiyar 2020) on a frozen encoder: the tag of the nearest support word."""

    def __init__(self, config: TokenMethodConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> NearestTokenKey:
        tags, vectors, labels = support_words(self.context, support)
        return NearestTokenKey(self.context, tags, vectors, labels, self.config.distance)


# Abstract transitions of Yang and Katiyar (2020): from the sentence start, from O, or from
# inside an entity (B or I, "E") to O, to a B of the same or another type, to an I of the same
# type. Start/O -> I and E -> I of another type break BIO and are impossible.
ABSTRACT = (
    "start->O", "start->B", "O->O", "O->B", "E->O", "E->B same", "E->B other", "E->I same",
)  # fmt: skip
ROWS = {"start": (0, 1), "O": (2, 3), "E": (4, 5, 6, 7)}


def abstract_transition(previous: str | None, tag: str) -> str | None:
    """The abstract name of `previous` -> `tag` (`previous` None: the sentence start), or None
    for a transition that BIO forbids."""
    source = "start" if previous is None else "O" if previous == "O" else "E"
    if tag == "O":
        return f"{source}->O"
    prefix, kind = tag[0], tag[2:]
    same = previous is not None and previous != "O" and previous[2:] == kind
    if prefix == "B":
        return f"{source}->B" + (" same" if same else " other") * (source == "E")
    return "E->I same" if same else None


def count_transitions(sentences: Sequence[TaggedSentence]) -> torch.Tensor:
    """How often each abstract transition (in `ABSTRACT` order) occurs in the tag sequences."""
    counts = torch.zeros(len(ABSTRACT), dtype=torch.float64)
    for sentence in sentences:
        previous = None
        for tag in sentence.tags:
            name = abstract_transition(previous, tag)
            if name is None:
                raise ValueError(f"{previous!r} -> {tag!r} in {sentence.uid} is not valid BIO")
            counts[ABSTRACT.index(name)] += 1
            previous = tag
    return counts


def abstract_log_probs(counts: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Log-probabilities of the abstract transitions, add-`smoothing` per row (start, O, E)."""
    out = torch.empty_like(counts)
    for index in ROWS.values():
        row = counts[list(index)] + smoothing
        out[list(index)] = (row / row.sum()).log()
    return out


def expand_transitions(
    log_probs: torch.Tensor, tags: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Start scores (T,) and transition scores (T, T) over an episode's `tags`.

    O -> B and start -> B mass is shared evenly by the episode's types, E -> B-other mass by the
    other types; forbidden transitions are -inf; each row is renormalised over `tags`.
    """
    types = {tag[2:] for tag in tags if tag != "O"}
    share = {"start->B": len(types), "O->B": len(types), "E->B other": max(len(types) - 1, 1)}

    def score(previous: str | None, tag: str) -> float:
        name = abstract_transition(previous, tag)
        if name is None:
            return float("-inf")
        return float(log_probs[ABSTRACT.index(name)]) - math.log(share.get(name, 1))

    start = torch.tensor([score(None, tag) for tag in tags], dtype=torch.float64)
    matrix = torch.tensor(
        [[score(previous, tag) for tag in tags] for previous in tags], dtype=torch.float64
    )
    start = start - start.logsumexp(0)
    matrix = matrix - matrix.logsumexp(1, keepdim=True)
    return start, matrix


def viterbi(emissions: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor) -> list[int]:
    """The tag indices maximising sum(emissions) + start + sum(transitions); (L, T) emissions."""
    best = start + emissions[0]
    back = []
    for row in emissions[1:]:
        scores = best.unsqueeze(1) + transitions  # (previous, next)
        best, pointer = scores.max(0)
        best = best + row
        back.append(pointer)
    path = [int(best.argmax())]
    for pointer in reversed(back):
        path.append(int(pointer[path[-1]]))
    return path[::-1]


@dataclass(frozen=True)
class StructShotConfig(MetaTrainConfig):
    """StructShot (Yang and Katiyar 2020) on a frozen encoder.

    Emissions are log-softmax(`emission_scale` x the best similarity to a support word of each
    tag); paths are scored by emissions plus `transition_weight` x log transition probabilities,
    estimated (add-`smoothing`) by counting abstract transitions in the support and query tag
    sequences of `meta_episodes` training episodes of `train_n_way` types (meta-training only
    counts: `meta_lr` is unused and nothing is validated; `meta_episodes` 0 leaves uniform
    abstract transitions, which still forbid invalid BIO); training episodes have at most as
    many types as the train split (crossner-conll-to-*: 4). `emission_scale` 0.5
    was the best of 0.02-0.5 on crossner-conll-to-music validation episodes (5-way 1-shot,
    all-MiniLM-L6-v2, where squared distances between word vectors are about 100-250).
    """

    distance: Distance = "euclidean"
    emission_scale: float = 0.5
    transition_weight: float = 1.0
    smoothing: float = 1.0
    meta_episodes: int = 200
    meta_batch: int = 10
    train_n_query: int = 1
    valid_every: int = 0


@dataclass(frozen=True)
class ViterbiTagger:
    """Tags query sentences with the best path under NNShot emissions and expanded transitions."""

    context: WordVectors
    tags: list[str]
    keys: torch.Tensor
    key_tags: torch.Tensor
    config: StructShotConfig
    start: torch.Tensor
    transitions: torch.Tensor

    def emissions(self, vectors: torch.Tensor) -> torch.Tensor:
        """(L, T) log-probabilities from each tag's nearest support word."""
        scores = similarity(vectors, self.keys, self.config.distance).cpu().double()
        index = self.key_tags.cpu().expand_as(scores)
        best = torch.full((len(vectors), len(self.tags)), float("-inf"), dtype=scores.dtype)
        best = best.scatter_reduce(1, index, scores, reduce="amax")
        return (self.config.emission_scale * best).log_softmax(-1)

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        out = []
        weight = self.config.transition_weight
        for vectors in self.context.embed_tokens(sentences):
            if len(vectors) == 0:
                out.append([])
                continue
            path = viterbi(self.emissions(vectors), weight * self.start, weight * self.transitions)
            out.append([self.tags[i] for i in path])
        return out


class StructShot:
    """NNShot emissions + Viterbi over abstract transitions counted on the training split."""

    def __init__(self, config: StructShotConfig, context: MethodContext) -> None:
        self.config = config
        self.context = context
        self.counts = torch.zeros(len(ABSTRACT), dtype=torch.float64)

    def train_step(self, episodes: Sequence[Episode], rng: random.Random) -> float:
        """Add the batch's transition counts; returns their mean negative log-likelihood under
        the estimate before this batch."""
        batch = count_transitions([s for e in episodes for s in (*e.support, *e.query)])
        log_probs = abstract_log_probs(self.counts, self.config.smoothing)
        self.counts += batch
        return float(-(batch * log_probs).sum() / batch.sum().clamp(min=1))

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts}

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        self.counts = state["counts"].clone().to(torch.float64)

    def fit(self, support: Sequence[TaggedSentence], rng: random.Random) -> ViterbiTagger:
        tags, vectors, labels = support_words(self.context, support)
        log_probs = abstract_log_probs(self.counts, self.config.smoothing)
        start, transitions = expand_transitions(log_probs, tags)
        return ViterbiTagger(self.context, tags, vectors, labels, self.config, start, transitions)


METHODS.add(
    "ner-protonet-frozen",
    MethodEntry(
        "token prototypes per BIO tag on frozen word vectors (ProtoBERT without its training)",
        TokenMethodConfig("euclidean"),
        TokenPrototypes,
        kinds=("tagging",),
    ),
)
METHODS.add(
    "nnshot-frozen",
    MethodEntry(
        "nearest support word's tag on frozen word vectors (NNShot without its fine-tuning)",
        TokenMethodConfig("euclidean"),
        NNShot,
        kinds=("tagging",),
    ),
)
METHODS.add(
    "structshot-frozen",
    MethodEntry(
        "NNShot emissions on frozen word vectors + Viterbi over abstract BIO transitions counted "
        "on the training split (StructShot without its fine-tuning)",
        StructShotConfig(),
        StructShot,
        kinds=("tagging",),
        trainable=True,
    ),
)
