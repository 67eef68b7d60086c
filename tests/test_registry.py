"""Registry: unique names, lazy entries, and close-match suggestions."""

from __future__ import annotations

import pytest

from benchmark.core.errors import BenchmarkError, UnknownNameError
from benchmark.core.methods import METHODS
from benchmark.core.registry import TASKS, Registry
from benchmark.core.types import EncoderOptions
from benchmark.engine.encoders import ENCODERS, build_encoder


def test_duplicate_names_are_refused():
    registry: Registry[int] = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(BenchmarkError, match="registered twice"):
        registry.add("a", 2)


def test_lazy_entry_is_resolved_on_lookup():
    registry: Registry[object] = Registry("thing")
    registry.add("join", "os.path:join")
    import os.path

    assert registry.get("join") is os.path.join


@pytest.mark.parametrize(
    ("registry", "typo", "suggestion"),
    [
        (TASKS, "clinc15", "clinc150"),
        (TASKS, "CLINC150", "clinc150"),
        (METHODS, "protonett", "protonet"),
        (METHODS, "logistic_regression", "logistic-regression"),
        (ENCODERS, "all-MiniLM-L6", "all-MiniLM-L6-v2"),
    ],
)
def test_unknown_names_suggest_close_matches(registry, typo, suggestion):
    with pytest.raises(UnknownNameError) as caught:
        registry.get(typo)
    message = str(caught.value)
    assert f"unknown {registry.kind} {typo!r}" in message
    assert f"Did you mean {suggestion!r}" in message


def test_unknown_encoder_without_slash_is_not_sent_to_the_hub():
    with pytest.raises(UnknownNameError, match="Did you mean 'hashing-bow'"):
        build_encoder("hashing-bo", EncoderOptions())


def test_builtins_are_registered():
    assert {"protonet", "protonet-cosine", "nearest-neighbour", "logistic-regression"} <= set(
        METHODS.names()
    )
    assert {"majority", "random"} <= set(METHODS.names())
    assert "clinc150" in TASKS
    assert "all-MiniLM-L6-v2" in ENCODERS
