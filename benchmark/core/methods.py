"""The method protocol: a method fits on a support set and returns a predictor for queries."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import Registry, import_object
from benchmark.core.types import Encoder, Example, Kind


class Predictor(Protocol):
    """Classification: labels query texts with label names of the support set."""

    def predict(self, texts: Sequence[str]) -> list[str]: ...


class TagPredictor(Protocol):
    """Tagging: one BIO tag per token of each query sentence."""

    def predict(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]: ...


class Method(Protocol):
    """Fitting returns a new predictor and mutates nothing shared between episodes.

    Classification methods get `Example`s and return a `Predictor`; tagging methods get
    `TaggedSentence`s and return a `TagPredictor`. Optional hooks the runner calls when present:
    `score_batch(episodes)`, `check_episodes(episodes)` before any episode is scored, and
    `cell_report()` for the record's `method_report`.
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
    trainable: bool = False  # meta-trains on the training classes (see benchmark.training)

    def config_dict(self, name: str) -> dict[str, Any]:
        """The method's full configuration as recorded in results."""
        return {"name": name, **dataclasses.asdict(self.config)}


METHODS: Registry[MethodEntry] = Registry("method", ("baselines",), "fewshot_bench.methods")


@dataclass(frozen=True)
class NoOptions:
    """The config of a method without options."""


def resolve_method(name: str) -> MethodEntry:
    """A registered method (built in, or an entry point of the `fewshot_bench.methods` group), or
    a plug-in given as `module:Object`.

    The object may be a `MethodEntry`, or a class built as `Class(config, context)` whose
    optional class attributes are `Config` (a config dataclass), `kinds`, `needs_encoder`.
    A class with a `train_step` method is meta-trained like the built-in trainable methods.
    """
    if name in METHODS or ":" not in name:
        target = METHODS.get(name)
    else:
        try:
            target = import_object(name)
        except (ImportError, AttributeError) as error:
            raise BenchmarkError(f"cannot load method {name!r}: {error}") from error
    if isinstance(target, MethodEntry):
        return target
    if not isinstance(target, type) or not hasattr(target, "fit"):
        raise BenchmarkError(
            f"method {name!r} must be a MethodEntry or a class with fit(support, rng), "
            f"not {type(target).__name__}"
        )
    config_type = getattr(target, "Config", NoOptions)
    return MethodEntry(
        description=(target.__doc__ or name).strip().splitlines()[0],
        config=config_type(),
        build=target,
        needs_encoder=getattr(target, "needs_encoder", True),
        kinds=tuple(getattr(target, "kinds", ("classification",))),
        trainable=hasattr(target, "train_step"),
    )


def label_index(support: Sequence[Example]) -> tuple[list[str], torch.Tensor]:
    """Sorted label names of a support set and each support example's index into them."""
    names = sorted({e.label for e in support})
    position = {name: i for i, name in enumerate(names)}
    return names, torch.tensor([position[e.label] for e in support])
