"""The package layout: imports run one way (commands -> analysis/perf -> engine -> core), no
import cycles, only the dispatcher imports a subcommand module, and small modules that say their
one job. The checks read every module's imports with `ast` (top-level, inside functions and
under `TYPE_CHECKING` alike) and are run once more on a copy of the tree with a deliberate
back-edge, so that they are known to fail when they should."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("benchmark", "baselines", "tasks", "run_all.py")
CORE, ENGINE, ANALYSIS, PERF, COMMANDS = (
    "benchmark.core",
    "benchmark.engine",
    "benchmark.analysis",
    "benchmark.perf",
    "benchmark.commands",
)
# Each layer and the other layers its modules may import (a layer may always import itself).
LAYERS: dict[str, frozenset[str]] = {
    "benchmark": frozenset(),  # the package's own __init__
    CORE: frozenset(),
    ENGINE: frozenset({CORE}),
    "tasks": frozenset({CORE}),
    "baselines": frozenset({ENGINE, CORE}),
    ANALYSIS: frozenset({ENGINE, CORE}),
    PERF: frozenset({"baselines", ENGINE, CORE}),
    COMMANDS: frozenset({ANALYSIS, PERF, ENGINE, CORE, "tasks"}),
    "benchmark.cli": frozenset({COMMANDS}),
    "run_all": frozenset({COMMANDS, CORE}),
    # The stable import paths of plug-ins (re-exports only).
    "benchmark.types": frozenset({CORE}),
    "benchmark.methods": frozenset({CORE}),
    "benchmark.registry": frozenset({CORE, ENGINE}),
}
PLUGIN_PATHS = ("benchmark.types", "benchmark.methods", "benchmark.registry")
MAX_LINES = 400


def modules(root: Path) -> dict[str, Path]:
    """Every module of the project under `root`, by dotted name."""
    found = {}
    for source in SOURCES:
        path = root / source
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            parts = file.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = file
    return found


def imports(file: Path, known: Iterable[str]) -> set[str]:
    """The project modules `file` imports, anywhere in it."""
    known = set(known)
    targets: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                targets.add(submodule if submodule in known else node.module)
    return {t for t in targets if t in known}


def graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    found = modules(root)
    return {name: imports(file, found) - {name} for name, file in found.items()}


def layer(module: str) -> str | None:
    """The longest layer name that is `module` or a package above it."""
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def command_modules(root: Path) -> set[str]:
    """The subcommand modules: those of `benchmark.commands` that define `register`."""
    found = modules(root)
    return {
        name
        for name, file in found.items()
        if name.startswith(COMMANDS + ".")
        and any(
            isinstance(node, ast.FunctionDef) and node.name == "register"
            for node in ast.parse(file.read_text()).body
        )
    }


def violations(root: Path) -> list[str]:
    """Every import against the directions, of a subcommand module, or of a plug-in path."""
    edges = graph(root)
    commands = command_modules(root)
    problems = []
    for module, targets in sorted(edges.items()):
        own = layer(module)
        if own is None:
            problems.append(f"{module} belongs to no layer")
            continue
        for target in sorted(targets):
            theirs = layer(target)
            if theirs != own and theirs not in LAYERS[own]:
                problems.append(f"{module} ({own}) imports {target} ({theirs})")
            if target in commands and module != "benchmark.cli":
                problems.append(f"{module} imports the subcommand module {target}")
            if target in PLUGIN_PATHS:
                problems.append(f"{module} imports {target}, a plug-in path")
    return problems


def cycles(root: Path) -> list[list[str]]:
    """Import cycles among the project's modules (each found once, as a path)."""
    edges = graph(root)
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges.get(module, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    return found


def test_imports_follow_the_layer_directions():
    assert violations(REPO) == []


def test_there_are_no_import_cycles():
    assert cycles(REPO) == []


def test_the_checks_see_every_module_and_the_dispatcher_imports_every_command():
    found = modules(REPO)
    assert {"benchmark.core.types", "benchmark.engine.sweep", "benchmark.cli", "run_all"} <= set(
        found
    )
    commands = command_modules(REPO)
    subcommands = {"run", "train", "results", "report", "perf", "reproduce", "check", "submit",
                   "leaderboard", "cache", "listing", "describe", "episodes",
                   "stats_check"}  # fmt: skip
    assert commands == {f"{COMMANDS}.{name}" for name in subcommands}
    assert graph(REPO)["benchmark.cli"] >= commands


def copy_tree(tmp_path: Path) -> Path:
    for source in SOURCES:
        path = REPO / source
        if path.is_file():
            shutil.copy(path, tmp_path / source)
        else:
            shutil.copytree(path, tmp_path / source, ignore=shutil.ignore_patterns("vendored"))
    return tmp_path


def test_a_back_edge_a_command_import_and_a_cycle_are_each_caught(tmp_path):
    root = copy_tree(tmp_path)
    assert violations(root) == [] and cycles(root) == []
    (root / "benchmark" / "core" / "probe.py").write_text(
        '"""A back-edge."""\n\n\ndef late():\n    from benchmark.engine.store import Record\n\n'
        "    return Record\n"
    )
    (root / "benchmark" / "analysis" / "probe.py").write_text(
        '"""Imports a subcommand module."""\n\nfrom benchmark.commands import run\n'
    )
    assert violations(root) == [
        "benchmark.analysis.probe (benchmark.analysis) imports benchmark.commands.run "
        "(benchmark.commands)",
        "benchmark.analysis.probe imports the subcommand module benchmark.commands.run",
        "benchmark.core.probe (benchmark.core) imports benchmark.engine.store (benchmark.engine)",
    ]
    (root / "benchmark" / "core" / "probe.py").write_text(
        '"""A cycle inside one layer."""\n\nfrom benchmark.core import pools\n'
    )
    pools = root / "benchmark" / "core" / "pools.py"
    pools.write_text(pools.read_text() + "\nfrom benchmark.core import probe  # noqa\n")
    assert ["benchmark.core.pools", "benchmark.core.probe", "benchmark.core.pools"] in cycles(root)


@pytest.mark.parametrize("name", sorted(modules(REPO)))
def test_every_module_is_small_and_says_its_job(name):
    file = modules(REPO)[name]
    lines = len(file.read_text().splitlines())
    assert lines <= MAX_LINES, f"{file.relative_to(REPO)} has {lines} lines (at most {MAX_LINES})"
    assert ast.get_docstring(ast.parse(file.read_text())), f"{file.relative_to(REPO)}: docstring"
