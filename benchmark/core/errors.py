"""User-facing errors: the CLI prints their message without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchmarkError(Exception):
    """Base class of errors caused by the user's input or environment, not by a bug."""


class UnknownNameError(BenchmarkError, KeyError):
    """A task, method or encoder name that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        by_lower = {k.lower(): k for k in known}
        close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), by_lower, 3, 0.5)]
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        message = f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}."
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class SpecError(BenchmarkError, ValueError):
    """An episode spec that the chosen split cannot satisfy."""


class DataNotFoundError(BenchmarkError, FileNotFoundError):
    """The data a task needs is not where we looked."""


class DataFormatError(BenchmarkError, ValueError):
    """A data file that does not have the expected format; names the file and line."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
