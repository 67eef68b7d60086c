"""Plain-text tables of result records."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence

from tabulate import tabulate

from benchmark.core.stats import mean_ci
from benchmark.engine.store import Record, spec_label


def _order(record: Record) -> tuple:
    return (
        record["task"],
        record["n_way"],
        record["k_shot"],
        record["n_query"] or 0,
        record["method"],
    )


def _score(record: Record) -> str:
    if record.get("status") != "ok":
        last = (record.get("error") or "").strip().splitlines()
        return "FAILED: " + (last[-1] if last else "unknown error")
    ci = record["ci95"]
    return (
        f"{100 * record['mean']:.2f} ± {100 * ci:.2f}"
        if ci is not None
        else f"{100 * record['mean']:.2f}"
    )


def results_table(records: Sequence[Record], tablefmt: str = "github") -> str:
    """Mean and 95% CI (in points) of each cell, with the episodes and seeds behind it; a
    `split` column when a task ran on several class splits.

    `tablefmt` is a tabulate format: `github` (markdown), `html`, ...
    """
    splits: dict[str, set] = {}
    for r in records:
        splits.setdefault(r["task"], set()).add(r.get("class_split"))
    several = any(len(s) > 1 for s in splits.values())
    rows = [
        [
            r["task"],
            *([r.get("class_split") or "-"] if several else []),
            r["method"],
            r.get("encoder") or "-",
            r["n_way"],
            r["k_shot"],
            "all" if r["n_query"] is None else r["n_query"],
            r["metric"],
            _score(r),
            r["n_episodes"],
            len(r["seeds"]),
        ]
        for r in sorted(records, key=lambda r: (*_order(r), r.get("class_split") or ""))
    ]
    headers = [
        "task",
        *(["split"] if several else []),
        "method",
        "encoder",
        "N",
        "K",
        "Q",
        "metric",
        "mean ± 95% CI (%)",
        "episodes",
        "seeds",
    ]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def throughput_table(records: Sequence[Record], tablefmt: str = "github") -> str:
    """Wall time split into encoding and method time, rates, and peak memory of each cell.

    "sweep encoder s" is the time the run spent encoding (or reading from the disk cache) the
    union of the texts of all cells it ran, before any cell; every cell of that run shows it,
    and its own "encoder s" then only counts in-memory look-ups. `tablefmt` is a tabulate
    format: `github` (markdown), `html`, ...
    """
    rows = []
    for r in sorted(records, key=_order):
        if r.get("status") != "ok":
            continue
        t = r["throughput"]
        rows.append(
            [
                r["task"],
                r["method"],
                spec_label(r),
                r["n_episodes"],
                f"{t['wall_s']:.2f}",
                f"{t['encoder_s']:.2f}",
                f"{t['method_s']:.2f}",
                f"{t['sweep_encoder_s']:.2f}" if "sweep_encoder_s" in t else "-",
                f"{t['episodes_per_s']:.1f}",
                f"{t['examples_per_s']:.0f}",
                f"{r['peak_memory_mb']:.0f}",
                r.get("device", "-"),
            ]
        )
    headers = [
        "task",
        "method",
        "spec",
        "episodes",
        "wall s",
        "encoder s",
        "method s",
        "sweep encoder s",
        "episodes/s",
        "examples/s",
        "peak MB",
        "device",
    ]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def per_class_table(
    records: Sequence[Record], tablefmt: str = "github", worst: int | None = None
) -> str:
    """Precision, recall, F1 and support of each class (NER: entity type) of each cell, pooled
    over the cell's queries, worst F1 first within a cell (only the `worst` lowest, if given);
    records without them are left out."""
    rows = [
        [r["task"], r["method"], spec_label(r), name, f"{100 * c['precision']:.1f}",
         f"{100 * c['recall']:.1f}", f"{100 * c['f1']:.1f}", c["support"]]
        for r in sorted(records, key=_order)
        if r.get("status") == "ok" and r.get("per_class")
        for name, c in sorted(r["per_class"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))[:worst]
    ]  # fmt: skip
    headers = ["task", "method", "spec", "class", "precision (%)", "recall (%)", "F1 (%)",
               "support"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def span_errors_table(records: Sequence[Record], tablefmt: str = "github") -> str:
    """NER cells: entity F1 beside span F1 (types ignored), the type accuracy of the entities
    found with the right span, and Few-NERD's error counts; other records are left out."""
    rows = []
    for r in sorted(records, key=_order):
        e = r.get("span_errors") if r.get("status") == "ok" else None
        if e:
            accuracy = "-" if e["type_accuracy"] is None else f"{100 * e['type_accuracy']:.1f}"
            rows.append([r["task"], r["method"], spec_label(r), f"{100 * r['mean']:.2f}",
                         f"{100 * e['span_f1']['mean']:.2f}", accuracy, e["correct"],
                         e["wrong_type"], e["false_span"], e["left_out"],
                         e["missed_span"]])  # fmt: skip
    headers = ["task", "method", "spec", "entity F1 (%)", "span F1 (%)", "type accuracy (%)",
               "correct", "wrong type", "false span", "of which left-out types",
               "missed span"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _across_key(record: Record) -> tuple:
    """What a cell is apart from its class split."""
    config = json.dumps(record.get("method_config"), sort_keys=True)
    return (record["task"], record["method"], record.get("encoder"), record["n_way"],
            record["k_shot"], record["n_query"] or 0, tuple(record["seeds"]),
            record["episodes_per_seed"], record["metric"], config)  # fmt: skip


def across_splits(records: Sequence[Record]) -> list[list[Record]]:
    """Groups of ok records that differ only in their class split, two splits or more each."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        if r.get("status") == "ok":
            groups.setdefault(_across_key(r), []).append(r)
    return [sorted(g, key=lambda r: r["class_split"]) for _, g in sorted(groups.items())
            if len({r["class_split"] for r in g}) >= 2]  # fmt: skip


def across_splits_table(records: Sequence[Record], tablefmt: str = "github") -> str:
    """Per method and spec run on several class splits: the mean of the splits' means, the
    across-split standard deviation, a 95% Student-t interval with the split as the unit (n =
    splits), and each split's mean. Empty when no cell ran on two splits or more."""
    rows = []
    for group in across_splits(records):
        means = [100 * r["mean"] for r in group]
        summary = mean_ci(means)
        spread = statistics.stdev(means)
        first = group[0]
        each = ", ".join(f"{r['class_split']}: {m:.2f}" for r, m in zip(group, means, strict=True))
        cells = f"{summary.mean:.2f} ± {spread:.2f}", f"± {summary.ci95:.2f}", each
        rows.append([first["task"], first["method"], spec_label(first), len(group), *cells])
    if not rows:
        return ""
    headers = ["task", "method", "spec", "splits", "mean ± std over splits (%)",
               "95% CI (splits as unit)", "per split (%)"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
