"""A generic registry with helpful errors, lazy entries and entry-point plug-ins."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Generic, TypeVar

from benchmark.core.errors import BenchmarkError, UnknownNameError

T = TypeVar("T")


def import_object(target: str) -> object:
    """Import `module:attr` (attr may be dotted)."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise BenchmarkError(f"expected 'module:attribute', got {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Name -> object. Names are unique; lookups of unknown names suggest close matches.

    Built-in entries come from importing `builtin_modules` on first use (their import registers
    them); third-party entries come from the `entry_point_group` of installed packages. An entry
    may be a lazy string `"module:attr"`, resolved on first lookup.
    """

    def __init__(
        self, kind: str, builtin_modules: tuple[str, ...] = (), entry_point_group: str = ""
    ) -> None:
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._entry_point_group = entry_point_group
        self._entries: dict[str, T | str] = {}
        self._loaded = False

    def add(self, name: str, obj: T | str) -> T | str:
        """Register `obj` (or a lazy `"module:attr"` string) under `name`."""
        if name in self._entries:
            raise BenchmarkError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorate(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        if self._entry_point_group:
            for point in entry_points(group=self._entry_point_group):
                if point.name not in self._entries:
                    self._entries[point.name] = point.value

    def get(self, name: str) -> T:
        """Look up `name`, resolving a lazy entry; unknown names raise with suggestions."""
        self._load()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = import_object(entry)  # type: ignore[assignment]
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, resolved entry) pairs, sorted by name."""
        for name in self.names():
            yield name, self.get(name)


if TYPE_CHECKING:
    from pathlib import Path

    from benchmark.core.types import Task, TaskEntry

    HubLoader = Callable[[int, Path | None], Task]


TASKS: Registry[TaskEntry] = Registry("task", ("tasks",), "fewshot_bench.tasks")


HUB_TASKS: Registry[HubLoader] = Registry("hub task", ("tasks.hub",))
