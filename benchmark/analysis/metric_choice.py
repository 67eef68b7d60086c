"""Which metric tables, the gate and the leaderboard rank by: `accuracy` (each task's own
metric: accuracy for classification, entity F1 for NER) or `macro-f1` (classification only).
Records are viewed with the chosen metric's scores in `mean`, `ci95`, `per_episode` and
`per_seed_mean`, so every consumer reads one set of fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from benchmark.core.errors import BenchmarkError
from benchmark.core.stats import mean_ci
from benchmark.engine.store import Record, spec_label

METRIC_CHOICES = ("accuracy", "macro-f1")
DEFAULT_METRIC = "accuracy"


def with_metric(records: Sequence[Record], metric: str, where: str = "record") -> list[Record]:
    """`records` viewed by `metric` (new dicts; failed records unchanged). Under `macro-f1`,
    tagging cells keep entity F1 beside classification cells, and records of tagging cells
    only are refused (NER uses entity F1), as is a classification record written before
    records held macro-F1."""
    if metric not in METRIC_CHOICES:
        raise BenchmarkError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_CHOICES)}")
    if metric == DEFAULT_METRIC:
        return list(records)
    tagging = [r for r in records if r.get("metric") == "entity-f1"]
    if tagging and len(tagging) == len(records):
        first = tagging[0]
        raise BenchmarkError(
            f"--metric macro-f1: {where} {first['task']} {first['method']} {spec_label(first)} "
            "is a tagging (NER) cell, scored by entity F1 over mentions; NER has no macro-F1 "
            "over classes (--metric accuracy shows each task's own metric; `results "
            "--per-class` gives per-type F1)"
        )
    return [
        _macro_view(r, where) if r.get("status", "ok") == "ok" and r["metric"] != "entity-f1" else r
        for r in records
    ]


def _macro_view(record: Record, where: str) -> Record:
    name = f"{where} {record['task']} {record['method']} {spec_label(record)}"
    macro = record.get("macro_f1")
    if not macro:
        raise BenchmarkError(
            f"--metric macro-f1: {name} was written before records held macro-F1; rerun the "
            "cell (or, for a gate baseline, `check --update-baseline`)"
        )
    scores = macro["per_episode"]
    seeds = len(record.get("seeds") or [0]) or 1
    per_seed = len(scores) // seeds
    summary = mean_ci(scores)
    return {
        **record,
        "metric": "macro-f1",
        "interval": "t",
        "mean": summary.mean,
        "ci95": summary.ci95,
        "per_episode": scores,
        "per_seed_mean": [
            sum(scores[i : i + per_seed]) / per_seed for i in range(0, len(scores), per_seed)
        ],
    }


def records_by_metric(
    records: Mapping[str, Record], metric: str, where: str = "record"
) -> dict[str, Record]:
    """`with_metric` over the values of a mapping, keys kept."""
    names = list(records)
    return dict(zip(names, with_metric([records[n] for n in names], metric, where), strict=True))
