"""The method protocol: a method fits on a support set and returns a predictor for queries."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from benchmark.encoders import Encoder
from benchmark.types import Example, Kind


class Predictor(Protocol):
    """Classification: labels query texts with label names of the support set."""

    def predict(self, texts: Sequence[str]) -> list[str]: ...


class TagPredictor(Protocol):
    """Tagging: one BIO tag per token of each query sentence."""

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]: ...


class Method(Protocol):
    """Fitting returns a new predictor and mutates nothing shared between episodes.

    Classification methods get `Example`s and return a `Predictor`; tagging methods get
    `TaggedSentence`s and return a `TagPredictor`.
    """

    def fit(self, support: Sequence[Any], rng: random.Random) -> Predictor | TagPredictor: ...


@dataclass(frozen=True)
class MethodContext:
    """What a method may use: the (cached) encoder and the torch device."""

    encoder: Encoder | None
    device: str = "cpu"

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Encoder embeddings of `texts` as a float32 tensor on the context's device."""
        if self.encoder is None:
            raise RuntimeError("this method needs an encoder, but the context has none")
        return torch.from_numpy(np.ascontiguousarray(self.encoder.encode(texts))).to(self.device)

    def embed_tokens(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Word vectors of each sentence, as float32 tensors on the context's device."""
        if self.encoder is None:
            raise RuntimeError("this method needs an encoder, but the context has none")
        return [torch.from_numpy(a).to(self.device) for a in self.encoder.encode_tokens(sentences)]


@dataclass(frozen=True)
class MethodEntry:
    """What the method registry holds: a typed config and how to build the method from it."""

    description: str
    config: Any
    build: Callable[[Any, MethodContext], Method]
    needs_encoder: bool = True
    kinds: tuple[Kind, ...] = ("classification",)

    def config_dict(self, name: str) -> dict[str, Any]:
        """The method's full configuration as recorded in results."""
        return {"name": name, **dataclasses.asdict(self.config)}


def label_index(support: Sequence[Example]) -> tuple[list[str], torch.Tensor]:
    """Sorted label names of a support set and each support example's index into them."""
    names = sorted({e.label for e in support})
    position = {name: i for i, name in enumerate(names)}
    return names, torch.tensor([position[e.label] for e in support])
