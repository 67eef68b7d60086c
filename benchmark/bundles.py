"""What the regression gate and submissions share: named suites, the cells a suite must produce
(with their episode fingerprints), schema validation, and refusals that name the file and cell."""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from benchmark.cli import build_parser, sweep_from_args
from benchmark.errors import BenchmarkError
from benchmark.methods import resolve_method
from benchmark.runner import EpisodeSets, RunOptions, Sweep, plan, run_sweep
from benchmark.sampling import combined_fingerprint
from benchmark.store import Record, spec_label
from benchmark.suite import COMMON, DEFAULT_SUITE, QUICK_COMMON, QUICK_SUITE, SUITE_VERSIONS

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "results" / "schema"

# What makes two cells' per-episode scores comparable pair by pair: same data, same episodes.
EPISODE_FIELDS = (
    "task_version",
    "class_split",
    "eval_split",
    "data_sha256",
    "n_way",
    "k_shot",
    "n_query",
    "seeds",
    "episodes_per_seed",
    "sampler_version",
    "episodes_fingerprint",
)
# What else makes them the same experiment: the method's configuration and encoder.
METHOD_FIELDS = ("method_config", "encoder")


class RefusedError(BenchmarkError):
    """A baseline, bundle or results folder that cannot be compared; lists every problem."""

    def __init__(self, where: object, problems: Sequence[str], hint: str = "") -> None:
        lines = "\n".join(f"  {where}: {problem}" for problem in problems)
        super().__init__(f"refused {where}:\n{lines}" + (f"\n  {hint}" if hint else ""))


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of `fewshot-bench run` lines, each run with the common flags."""

    name: str
    version: int
    lines: tuple[tuple[str, ...], ...]
    common: tuple[str, ...]


SUITES: dict[str, Suite] = {
    "quick": Suite("quick", SUITE_VERSIONS["quick"], QUICK_SUITE, QUICK_COMMON),
    "default": Suite(
        "default", SUITE_VERSIONS["default"], DEFAULT_SUITE, (*COMMON, "--skip-unavailable")
    ),
}


@dataclass(frozen=True)
class SuiteRun:
    """A suite with the method that replaces its own (None keeps them) and how to run it."""

    suite: Suite
    method: str | None = None
    options: tuple[str, ...] = ()
    device: str = "cpu"
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, method: str | None = None, options: Sequence[str] = ()
    ) -> SuiteRun:
        """The run the flags of `add_suite_run_arguments` describe."""
        return cls(SUITES[args.suite], method, tuple(options), args.device, args.data_dir,
                   args.cache_dir, not args.no_progress)  # fmt: skip

    def sweeps(self, out: Path) -> list[tuple[Sweep, RunOptions]]:
        """Each applicable line parsed as `fewshot-bench run` flags, writing to `out` (forced)."""
        lines = [line for line in self.suite.lines if self._applies(line)]
        if not lines:
            raise BenchmarkError(
                f"method {self.method!r} handles none of the task kinds of suite "
                f"{self.suite.name!r}"
            )
        return [sweep_from_args(build_parser().parse_args(self._argv(line, out))) for line in lines]

    def _applies(self, line: Sequence[str]) -> bool:
        """A line applies to the method if its own methods share a task kind with it."""
        if self.method is None:
            return True
        kinds = set(resolve_method(self.method).kinds)
        own = line[line.index("--method") + 1].split(",")
        return any(kinds & set(resolve_method(name).kinds) for name in own)

    def _argv(self, line: Sequence[str], out: Path) -> list[str]:
        argv = ["run", *line, *self.suite.common, "--out", str(out), "--force"]
        argv += ["--device", self.device]
        if self.method is not None:
            argv += ["--method", self.method]  # the last --method wins
        for option in self.options:
            argv += ["--option", option]
        if self.data_dir:
            argv += ["--data-dir", self.data_dir]
        if self.cache_dir:
            argv += ["--cache-dir", self.cache_dir]
        if not self.progress:
            argv.append("--no-progress")
        return argv


def cell_id(entry: Mapping[str, Any]) -> str:
    """`task method spec`, e.g. `clinc150 protonet 5w-1s-5q`."""
    return f"{entry['task']} {entry['method']} {spec_label(entry)}"


def slot_id(entry: Mapping[str, Any]) -> str:
    """`task spec`: the episodes every method of a suite is scored on."""
    return f"{entry['task']} {spec_label(entry)}"


def expected_cells(run: SuiteRun) -> dict[str, Record]:
    """Every cell the run must produce, by cell id: identity, episode fingerprint and task kind.

    Episodes are sampled, nothing is encoded or fitted.
    """
    cells: dict[str, Record] = {}
    for sweep, options in run.sweeps(Path(tempfile.gettempdir())):
        episode_sets = EpisodeSets()
        for cell in plan(sweep, options):
            fingerprint = combined_fingerprint(episode_sets.of(cell))
            entry = {**cell.identity, "episodes_fingerprint": fingerprint, "kind": cell.task.kind}
            cells[cell_id(entry)] = entry
    return cells


def run_records(run: SuiteRun, out: Path) -> list[Record]:
    """Run every line of the suite into `out` and return the records."""
    records: list[Record] = []
    for sweep, options in run.sweeps(out):
        records += run_sweep(sweep, options).records
    return records


def match_cells(
    expected: Mapping[str, Record],
    found: Iterable[Mapping[str, Any]],
    where: object,
    fields: Sequence[str],
    label: Callable[[Mapping[str, Any]], str] = cell_id,
    hint: str = "",
) -> dict[str, Record]:
    """The found entry of each expected cell (keyed by `label`), equal to it in `fields` and
    holding one score per episode; refuses with every cell that is missing or differs."""
    by_label: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for entry in found:
        by_label[label(entry)].append(entry)
    matched: dict[str, Record] = {}
    problems: list[str] = []
    for name, want in expected.items():
        candidates = by_label.get(name, [])
        exact = [c for c in candidates if not differences(want, c, fields)]
        if exact:
            matched[name] = dict(exact[0])
        elif candidates:
            problems += [f"cell {name}: {p}" for p in differences(want, candidates[0], fields)]
        else:
            problems.append(f"cell {name}: missing")
    problems += [
        f"cell {name}: not a cell of this run (a task whose data is not found is skipped: "
        "pass --data-dir)"
        for name in sorted(set(by_label) - set(expected))
    ]
    if problems:
        raise RefusedError(where, problems, hint)
    return matched


def differences(want: Mapping[str, Any], got: Mapping[str, Any], fields: Sequence[str]) -> list:
    """What differs between an expected cell and a found one, in words."""
    problems = [_difference(name, got.get(name), want[name]) for name in fields]
    problems = [p for p in problems if p]
    scores = got.get("per_episode")
    count = want["episodes_per_seed"] * len(want["seeds"])
    if scores is not None and len(scores) != count:
        problems.append(f"{len(scores)} per-episode scores, but the cell has {count} episodes")
    odd = [(i, x) for i, x in enumerate(scores or []) if not 0 <= x <= 1]  # NaN fails too
    if odd:
        problems.append(f"{len(odd)} per-episode scores are not in [0, 1], first at episode "
                        f"{odd[0][0]}: {odd[0][1]}")  # fmt: skip
    return problems


def _difference(name: str, got: object, want: object) -> str:
    if got == want:
        return ""
    if name == "task_version":
        return (
            f"task version {got!r}, but the task is now version {want!r} "
            "(results of another task version are never compared)"
        )
    if name == "episodes_fingerprint":
        return (
            f"episodes fingerprint {str(got)[:12]}... differs from this suite's "
            f"{str(want)[:12]}... (another episode set)"
        )
    return f"{name} is {got!r}, the suite has {want!r}"


def read_json(path: Path) -> Any:
    """A JSON file; a missing or malformed one is refused with its name (and line)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RefusedError(path, ["no such file"]) from None
    except json.JSONDecodeError as error:
        raise RefusedError(path, [f"line {error.lineno}: not valid JSON: {error.msg}"]) from None


def validate(document: Any, schema: str, path: Path, entries: str) -> None:
    """Refuse `document` (read from `path`) unless it matches `results/schema/<schema>`;
    errors inside the list `entries` name their cell."""
    registry: Registry = Registry()
    for name in ("record", "baseline", "bundle"):
        contents = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        registry = registry.with_resource(contents["$id"], Resource.from_contents(contents))
    contents = json.loads((SCHEMA_DIR / schema).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(contents, registry=registry)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))
    if errors:
        problems = [f"{_located(document, error, entries)}: {error.message}" for error in errors]
        raise RefusedError(path, problems[:10], f"(schema: results/schema/{schema})")


def _located(document: Any, error: jsonschema.ValidationError, entries: str) -> str:
    """`cell clinc150 protonet 5w-1s-5q, field per_episode/3`, or `field suite/version`."""
    where = list(error.absolute_path)
    if len(where) >= 2 and where[0] == entries and isinstance(document, dict):
        entry = document[entries][where[1]]
        try:
            name = f"cell {cell_id(entry)}"
        except (KeyError, TypeError):
            name = f"{entries}[{where[1]}]"
        rest = "/".join(map(str, where[2:]))
        return f"{name}, field {rest}" if rest else name
    return f"field {'/'.join(map(str, where))}" if where else "top level"


def add_suite_run_arguments(parser: argparse.ArgumentParser, device: str) -> None:
    """How a command runs a suite (`check`, `submit`): which suite, on which device (default
    `device`), with which data and cache, with or without progress bars."""
    parser.add_argument(
        "--suite", choices=sorted(SUITES), default="quick", help="which suite (default quick)"
    )
    parser.add_argument(
        "--device", default=device, help=f"cpu, cuda, cuda:N or auto (default {device})"
    )
    parser.add_argument("--data-dir", default=None, help="data folder (for the default suite)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache folder")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
