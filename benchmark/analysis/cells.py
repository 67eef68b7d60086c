"""What the regression gate and submissions share: which fields make two cells' scores
comparable, matching found cells with expected ones, schema validation, and refusals that name
the file and cell."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

from benchmark.core.errors import BenchmarkError
from benchmark.engine.store import Record, spec_label

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "results" / "schema"


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


def cell_id(entry: Mapping[str, Any]) -> str:
    """`task method spec`, e.g. `clinc150 protonet 5w-1s-5q`."""
    return f"{entry['task']} {entry['method']} {spec_label(entry)}"


def slot_id(entry: Mapping[str, Any]) -> str:
    """`task spec`: the episodes every method of a suite is scored on."""
    return f"{entry['task']} {spec_label(entry)}"


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
