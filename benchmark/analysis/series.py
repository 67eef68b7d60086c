"""Records as series of a report: a legend label per record, and paired tests between the
series of one task and spec that ran on identical episodes."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from tabulate import tabulate

from benchmark.core.stats import PairedTest, paired_test
from benchmark.engine.store import Record, spec_label

NOT_PAIRED = "not paired (different episodes)"


STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))


@dataclass(frozen=True)
class Comparison:
    """Two series of one task and spec; `test` is None when they ran on different episodes."""

    task: str
    spec: str
    a: str
    b: str
    test: PairedTest | None


# ---------------------------------------------------------------- grouping and labels


def _query(record: Record) -> int:
    return -1 if record["n_query"] is None else record["n_query"]


def panel_key(record: Record) -> tuple:
    """Task and N-way/query spec: one curve over K per series."""
    return (record["task"], record["n_way"], _query(record))


def spec_key(record: Record) -> tuple:
    """Task and full spec: the records that may be compared with each other."""
    return (*panel_key(record), record["k_shot"])


def grouped(records: Sequence[Record], key: Callable[[Record], Hashable]) -> list[list[Record]]:
    groups: dict = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return [groups[k] for k in sorted(groups)]


def _run(record: Record) -> str:
    return f"seeds {','.join(map(str, record['seeds']))} x {record['episodes_per_seed']}"


def _describers(group: Sequence[Record]) -> list[Callable[[Record], str]]:
    """The fields that tell a method's records of one task and spec apart, each as a short
    string."""
    repeated = [cell for cell in grouped(group, spec_key) if len(cell) > 1]
    options = sorted({k for r in group for k in r["method_config"]} - {"name"})
    candidates: list[Callable[[Record], str]] = [
        lambda r: r.get("encoder") or "no encoder",
        lambda r: f"v{r['task_version']}",
        lambda r: r["class_split"],
        lambda r: f"{r['eval_split']} split",
        lambda r: f"data {r['data_sha256'][:8]}",
        lambda r: f"{r.get('classes_available')} classes",
        lambda r: f"sampler {r['sampler_version']}",
        _run,
        *(lambda r, k=k: f"{k}={r['method_config'].get(k)}" for k in options),
    ]
    return [d for d in candidates if any(len({d(r) for r in cell}) > 1 for cell in repeated)]


def series_labels(records: Sequence[Record]) -> dict[str, str]:
    """A legend name per record key: the method, plus what tells its records apart (encoder, task
    version, split, data, seeds, options...) when the method ran more than once on one task and
    spec; records that still share a label get their key's first digits."""
    labels = {}
    for group in grouped(records, lambda r: r["method"]):
        describers = _describers(group)
        for record in group:
            extra = ", ".join(d(record) for d in describers)
            labels[record["key"]] = f"{record['method']} [{extra}]" if extra else record["method"]
        named = Counter((spec_key(r), labels[r["key"]]) for r in group)
        for record in group:
            if named[(spec_key(record), labels[record["key"]])] > 1:
                labels[record["key"]] = f"{labels[record['key']]} ({record['key'][:8]})"
    return labels


# ---------------------------------------------------------------- paired tests


def _paired(a: Record, b: Record) -> PairedTest | None:
    fingerprint = a.get("episodes_fingerprint")
    if fingerprint is None or fingerprint != b.get("episodes_fingerprint"):
        return None
    return paired_test(a["per_episode"], b["per_episode"])


def paired_comparisons(records: Sequence[Record], labels: dict[str, str]) -> list[Comparison]:
    """Every pair of series of each task and spec (A before B by name), with the paired t-test
    of their per-episode scores when both ran on the same episodes (`episodes_fingerprint`)."""
    comparisons = []
    for cell in grouped(records, spec_key):
        ordered = sorted(cell, key=lambda r: labels[r["key"]])
        for a, b in itertools.combinations(ordered, 2):
            comparisons.append(
                Comparison(
                    a["task"], spec_label(a), labels[a["key"]], labels[b["key"]], _paired(a, b)
                )
            )
    return comparisons


def format_p(p: float) -> str:
    """A p-value with three significant digits (`0.0123`, `4.56e-09`)."""
    return f"{p:.3g}"


def stars(p: float) -> str:
    return next((stars for level, stars in STARS if p < level), "")


def significance_table(comparisons: Sequence[Comparison], tablefmt: str = "github") -> str:
    """One row per pair: episodes, mean difference A - B in points with its 95% CI, p-value."""
    rows = []
    for c in comparisons:
        if c.test is None:
            numbers = ["-", NOT_PAIRED, "-"]
        else:
            ci = "" if c.test.ci95 is None else f" ± {100 * c.test.ci95:.2f}"
            numbers = [str(c.test.n), f"{100 * c.test.mean_difference:+.2f}{ci}"]
            numbers.append(format_p(c.test.p_value))
        rows.append([c.task, c.spec, c.a, c.b, *numbers])
    headers = ["task", "spec", "A", "B", "episodes", "A - B (points) ± 95% CI", "p (paired t)"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
