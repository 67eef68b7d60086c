"""Typed method configs: `--option name=value` strings checked against a config dataclass."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

from benchmark.core.errors import BenchmarkError


class ConfigError(BenchmarkError, ValueError):
    """An option that the method's config does not have, or a value of the wrong type."""


EVALUATION_ONLY = {"evaluation_only": True}
"""Metadata of a config field that only changes how a trained method is scored, never how it
trains: `field(default=..., metadata=EVALUATION_ONLY)`. A checkpoint serves every value of it."""


def training_options(config: Any, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` (`config` as a dict) without its evaluation-only fields."""
    skip = {f.name for f in dataclasses.fields(config) if f.metadata.get("evaluation_only")}
    return {name: value for name, value in options.items() if name not in skip}


def parse_options(pairs: Sequence[str]) -> dict[str, str]:
    """`["inner-lr=0.01", "maml.first_order=true"]` -> `{"inner_lr": "0.01", ...}`; a method
    scope before the last dot keeps its spelling (`finetune-full.steps`)."""
    options: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"expected --option NAME=VALUE, got {pair!r}")
        scope, dot, option = name.strip().rpartition(".")
        options[scope + dot + option.replace("-", "_")] = value.strip()
    return options


def field_types(config: Any) -> dict[str, Any]:
    """Each field of a config dataclass and its resolved type."""
    hints = typing.get_type_hints(type(config))
    return {f.name: hints[f.name] for f in dataclasses.fields(config)}


def describe_type(kind: Any) -> str:
    """How a field type reads in an error message: `int`, `one of 'a', 'b'`, `int or 'all'`."""
    if typing.get_origin(kind) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(kind))
    if typing.get_origin(kind) in (Union, types.UnionType):
        return " or ".join(describe_type(k).removeprefix("one of ") for k in typing.get_args(kind))
    return getattr(kind, "__name__", str(kind))


def coerce(name: str, kind: Any, text: str) -> Any:
    """`text` as a value of `kind` (bool, int, float, str, a Literal, or a union of them, tried
    in order); else ConfigError."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        for member in typing.get_args(kind):
            try:
                return coerce(name, member, text)
            except ConfigError:
                continue
        raise ConfigError(f"option {name}={text!r}: expected {describe_type(kind)}")
    if typing.get_origin(kind) is Literal:
        allowed = typing.get_args(kind)
        for value in allowed:
            if str(value) == text:
                return value
        raise ConfigError(f"option {name}={text!r}: expected {describe_type(kind)}")
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind in (int, float, str):
            return kind(text)
    except ValueError:
        raise ConfigError(f"option {name}={text!r}: expected {describe_type(kind)}") from None
    raise ConfigError(f"option {name} has type {kind}, which cannot be set from the command line")


def with_options(config: Any, options: Mapping[str, str], method: str) -> Any:
    """A copy of `config` with `options` applied; names are checked and values typed.

    Raises ConfigError naming the unknown option and the options the method has.
    """
    types = field_types(config)
    unknown = sorted(set(options) - set(types))
    if unknown:
        known = ", ".join(f"{n} ({describe_type(t)})" for n, t in types.items()) or "none"
        raise ConfigError(
            f"method {method!r} has no option {', '.join(unknown)}; its options: {known}"
        )
    values = {name: coerce(name, types[name], text) for name, text in options.items()}
    updated = dataclasses.replace(config, **values)
    check = getattr(updated, "validate", None)
    if check is not None:
        check()
    return updated


def applicable(config: Any, options: Mapping[str, str]) -> dict[str, str]:
    """The subset of `options` that `config` has a field for."""
    names = {f.name for f in dataclasses.fields(config)}
    return {k: v for k, v in options.items() if k in names}
