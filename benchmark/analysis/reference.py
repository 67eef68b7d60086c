"""Published results tables (`results/reference/*.json`): find, load and validate them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError, UnknownNameError

RESULTS_ENV = "FEWSHOT_BENCH_RESULTS"


REPO_RESULTS = Path(__file__).resolve().parents[2] / "results"


SCHEMA = Path("schema") / "reference.schema.json"


class ReferenceError(BenchmarkError, ValueError):
    """A reference file that is not valid JSON or breaks the schema; names file and problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"reference table {path} refused: {problem}")


@dataclass(frozen=True)
class Setting:
    """One published number's setting; `task` is our task that runs it (None: none does)."""

    task: str | None
    n_way: int
    k_shot: int
    n_query: int | None
    episodes: int | None
    encoder: str
    data: str


@dataclass(frozen=True)
class Entry:
    """One number as printed in the paper (`printed`, string-exact) and as a float (`value`)."""

    method: str
    dataset: str
    setting: Setting
    printed: str
    value: float


@dataclass(frozen=True)
class MethodMap:
    """Which of our methods stand for a paper's method, and how closely."""

    ours: tuple[str, ...]
    match: str  # "same", "approximate" or "not implemented"
    note: str = ""


@dataclass(frozen=True)
class ReferenceTable:
    """A validated reference file."""

    name: str
    path: Path
    title: str
    data: dict[str, Any]  # the whole file, for citation fields
    methods: dict[str, MethodMap]
    entries: tuple[Entry, ...]
    protocol_differences: tuple[str, ...]

    @property
    def citation(self) -> str:
        """`Authors (year), "Title", venue`."""
        paper = self.data["paper"]
        authors = paper["authors"]
        names = authors[0] + (" et al." if len(authors) > 1 else "")
        arxiv = f", arXiv {paper['arxiv']}" if paper.get("arxiv") else ""
        return f'{names} ({paper["year"]}), "{paper["title"]}", {paper["venue"]}{arxiv}'


def results_dir() -> Path:
    """`$FEWSHOT_BENCH_RESULTS`, else the repository's `results/` folder."""
    return Path(os.environ.get(RESULTS_ENV) or REPO_RESULTS)


def reference_dir() -> Path:
    """The folder of reference tables."""
    return results_dir() / "reference"


def table_names(folder: Path | None = None) -> list[str]:
    """Names of the reference tables (file names without `.json`), sorted."""
    folder = folder or reference_dir()
    return sorted(p.stem for p in folder.glob("*.json"))


def load_table(name: str, folder: Path | None = None) -> ReferenceTable:
    """The validated reference table `name`; unknown names fail with close matches."""
    folder = folder or reference_dir()
    path = folder / f"{name}.json"
    if not path.is_file():
        raise UnknownNameError("reference table", name, table_names(folder))
    return load_file(path)


def load_file(path: Path) -> ReferenceTable:
    """Read and validate one reference file (schema, then consistency across fields)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReferenceError(path, f"not valid JSON: {error}") from error
    check_schema(path, data)
    check_consistency(path, data)
    methods = {
        name: MethodMap(tuple(m["ours"]), m["match"], m.get("note", ""))
        for name, m in data["methods"].items()
    }
    entries = tuple(
        Entry(e["method"], e["dataset"], Setting(**e["setting"]), e["printed"], e["value"])
        for e in data["entries"]
    )
    return ReferenceTable(
        path.stem,
        path,
        data["title"],
        data,
        methods,
        entries,
        tuple(data["protocol_differences"]),
    )


def check_schema(path: Path, data: object) -> None:
    """Validate against `results/schema/reference.schema.json`; the first error names the field."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema(schema_path()))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        error = errors[0]
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ReferenceError(path, f"at {where}: {error.message}")


def check_consistency(path: Path, data: dict[str, Any]) -> None:
    """What the schema cannot say: file name = `table`, `value` = `printed`, known methods."""
    if data["table"] != path.stem:
        raise ReferenceError(path, f"'table' is {data['table']!r} but the file is {path.name}")
    for index, entry in enumerate(data["entries"]):
        where = f"entries/{index} ({entry['method']}, {entry['dataset']})"
        if float(entry["printed"]) != entry["value"]:
            raise ReferenceError(
                path, f"{where}: value {entry['value']} differs from printed {entry['printed']!r}"
            )
        if entry["method"] not in data["methods"]:
            raise ReferenceError(path, f"{where}: method not listed under 'methods'")
    for name, mapping in data["methods"].items():
        if (mapping["match"] == "not implemented") != (not mapping["ours"]):
            raise ReferenceError(
                path, f"methods/{name}: 'not implemented' exactly when 'ours' is empty"
            )


def schema_path() -> Path:
    """The reference-table schema: in `results_dir()`, else the repository's copy."""
    for path in (results_dir() / SCHEMA, REPO_RESULTS / SCHEMA):
        if path.is_file():
            return path
    raise BenchmarkError(
        f"no {SCHEMA} in {results_dir()} (${RESULTS_ENV}) nor in {REPO_RESULTS}: copy the "
        "repository's results/schema/ folder there too"
    )


@cache
def _schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
