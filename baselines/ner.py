"""Token-level few-shot NER methods on frozen contextual word vectors."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from baselines.frozen import Distance, similarity
from benchmark.methods import MethodContext, MethodEntry
from benchmark.registry import METHODS
from benchmark.types import TaggedSentence


@dataclass(frozen=True)
class TokenMethodConfig:
    """Distance between word vectors."""

    distance: Distance = "euclidean"


@dataclass(frozen=True)
class NearestTokenKey:
    """Tags each query word with the tag of its nearest key (a tag prototype or a support word)."""

    context: MethodContext
    tags: list[str]
    keys: torch.Tensor
    key_tags: torch.Tensor
    distance: Distance

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        out = []
        for vectors in self.context.embed_tokens(sentences):
            best = similarity(vectors, self.keys, self.distance).argmax(-1)
            out.append([self.tags[i] for i in self.key_tags[best].tolist()])
        return out


def support_words(
    context: MethodContext, support: Sequence[TaggedSentence]
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Sorted tag names, every support word's vector, and each word's tag index."""
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


METHODS.add(
    "ner-protonet",
    MethodEntry(
        "token prototypes per BIO tag on frozen word vectors (ProtoBERT without fine-tuning)",
        TokenMethodConfig("euclidean"),
        TokenPrototypes,
        kinds=("tagging",),
    ),
)
METHODS.add(
    "nnshot",
    MethodEntry(
        "nearest support word's tag on frozen word vectors (NNShot without fine-tuning)",
        TokenMethodConfig("euclidean"),
        NNShot,
        kinds=("tagging",),
    ),
)
