"""Result bundles of one suite ranked on a markdown leaderboard, with paired tests on
identical episodes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.analysis.cells import (
    RefusedError,
    cell_id,
    read_json,
    validate,
)
from benchmark.core.errors import BenchmarkError
from benchmark.core.stats import TEST_NAMES, Summary, mean_ci, paired_test
from benchmark.core.suites import SUITES
from benchmark.engine.store import Record, spec_label

SUBMIT_HINT = "rerun `fewshot-bench submit` with this version of fewshot-bench"


@dataclass(frozen=True)
class Bundle:
    """A loaded, checked bundle: its file, method and records by slot (`task spec`)."""

    path: Path
    method: str
    suite: str
    records: dict[str, Record]


def bundle_files(paths: Sequence[str]) -> list[Path]:
    """The given files, and the `*.json` files of the given folders."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        files += sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise BenchmarkError(f"no bundles found in {', '.join(paths)}")
    return files


def read_bundle(path: Path) -> Record:
    """A bundle file, refused unless it is valid, of a known suite version and one method."""
    document = read_json(path)
    validate(document, "bundle.schema.json", path, "records")
    name, version = document["suite"]["name"], document["suite"]["version"]
    if name not in SUITES or SUITES[name].version != version:
        known = ", ".join(f"{s.name} version {s.version}" for s in SUITES.values())
        raise RefusedError(
            path, [f"bundle of suite {name} version {version}; known suites: {known}"], SUBMIT_HINT
        )
    method, config = document["method"]["name"], document["method"]["config"]
    others = [f"cell {cell_id(r)}: method is not {method!r}"
              for r in document["records"] if r["method"] != method]  # fmt: skip
    others += [f"cell {cell_id(r)}: method config {r['method_config']} is not the bundle's {config}"
               for r in document["records"] if r["method_config"] != config]  # fmt: skip
    if others:
        raise RefusedError(path, others)
    return document


def leaderboard(bundles: Sequence[Bundle], alpha: float, test: str = "t") -> str:
    """One markdown table: per slot, methods ranked by mean, each against the best other."""
    by_slot: dict[str, dict[str, Record]] = defaultdict(dict)
    for bundle in bundles:
        for slot, record in bundle.records.items():
            by_slot[slot][bundle.method] = record
    suite = SUITES[bundles[0].suite]
    metrics = sorted({r["metric"] for b in bundles for r in b.records.values()})
    lines = [
        f"# Leaderboard: suite {suite.name} (version {suite.version}), {len(bundles)} bundles",
        "",
        f"Metric: {', '.join(metrics)} (each row's task). "
        "Mean and 95% CI over each cell's episodes, in points (the interval each record names: "
        "Wilson with the episodes' design effect for accuracy, Student-t otherwise). Δ is the "
        "mean difference to the best other method on the same episodes and p the two-sided "
        f"paired {TEST_NAMES[test]}'s p-value; * marks p < {alpha:g}.",
        "",
        "| task | spec | rank | method | mean ± 95% CI | episodes (seeds) | best other | Δ | p |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for slot in sorted(by_slot):
        lines += _slot_rows(by_slot[slot], alpha, test)
    return "\n".join(lines)


def _slot_rows(records: dict[str, Record], alpha: float, test_name: str) -> list[str]:
    """The leaderboard rows of one slot, best first; each record's CI as it gives it."""
    means = {
        method: Summary(mean_ci(r["per_episode"]).mean, r.get("ci95"), len(r["per_episode"]))
        for method, r in records.items()
    }
    ranked = sorted(records, key=lambda m: (-means[m].mean, m))
    rows = []
    for rank, method in enumerate(ranked, 1):
        record, summary = records[method], means[method]
        ci = "" if summary.ci95 is None else f" ± {100 * summary.ci95:.2f}"
        others = [m for m in ranked if m != method]
        compared = ["-", "-", "-"]
        if others:
            best = others[0]
            test = paired_test(record["per_episode"], records[best]["per_episode"], test_name)
            star = "*" if test.p_value < alpha else ""
            compared = [best, f"{100 * test.mean_difference:+.2f}{star}", f"{test.p_value:.3g}"]
        cells = [record["task"], spec_label(record), str(rank), method,
                 f"{100 * summary.mean:.2f}{ci}", f"{summary.n} ({len(record['seeds'])})",
                 *compared]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows
