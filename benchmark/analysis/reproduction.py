"""Reproducing a published table: which of our methods stand for the paper's, running them on
the table's settings, and ours next to the paper's numbers with every protocol difference."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from scipy import stats
from tabulate import tabulate

from benchmark.analysis.reference import (
    Entry,
    ReferenceTable,
    load_table,
)
from benchmark.core.methods import resolve_method
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec
from benchmark.engine.encoders import DEFAULT_ENCODER
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import Record
from benchmark.engine.sweep import run_sweep

DEFAULT_QUERY = 15
NOT_IMPLEMENTED = "not implemented"
Group = tuple[str, int, int, int]  # task, N, K, Q: one sweep


@dataclass(frozen=True)
class Profile:
    """How much to run: episodes x seeds, which meta-trained methods, and their budget.

    `methods` and `settings` (tests only) restrict the run to these of our methods and to
    these (N, K) settings.
    """

    name: str
    episodes: int
    seeds: tuple[int, ...]
    trainable: tuple[str, ...] | None = None  # meta-trained methods allowed (None: all)
    options: Mapping[str, str] = field(default_factory=dict)  # for meta-trained methods
    methods: tuple[str, ...] | None = None
    settings: tuple[tuple[int, int], ...] | None = None

    def describe(self) -> str:
        """The exact settings, for the output."""
        seeds = ",".join(map(str, self.seeds))
        text = (
            f"profile {self.name}: {self.episodes} episodes x {len(self.seeds)} seed(s) "
            f"({seeds}) per sampled setting, {DEFAULT_QUERY} queries per class unless the table "
            "gives a query size; fixed-episode settings run their one episode"
        )
        if self.trainable is not None:
            text += f"; meta-trained methods limited to {', '.join(self.trainable) or 'none'}"
        if self.options:
            text += "; " + " ".join(f"--option {k}={v}" for k, v in sorted(self.options.items()))
        else:
            text += "; meta-trained methods use their default budgets (see `list methods`)"
        if self.methods is not None:
            text += f"; only {', '.join(self.methods)}"
        if self.settings is not None:
            text += "; only " + ", ".join(f"{n}-way {k}-shot" for n, k in self.settings)
        return text


FULL = Profile("full", episodes=200, seeds=(0, 1, 2, 3, 4))
QUICK = Profile(
    "quick",
    episodes=100,
    seeds=(0,),
    trainable=("maml", "protonet-meta", "ner-protonet"),
    options={
        "meta_episodes": "80",
        "valid_every": "20",
        "valid_episodes": "20",
        # ProtoBERT's source training: 80 steps leave the encoder worse than frozen (CI measured
        # 60 steps at 5e-5 below nnshot-frozen); 300 steps at 1e-4 take about 100 s here.
        "ner-protonet.meta_episodes": "300",
        "ner-protonet.encoder_lr": "1e-4",
        "ner-protonet.valid_every": "0",
    },
)


@dataclass(frozen=True)
class Row:
    """One line of the side-by-side table: a paper number and one of our methods (or why not)."""

    entry: Entry
    method: str | None  # our method; None when the paper's method is not implemented
    skipped: str | None  # why it is not run, or None


@dataclass(frozen=True)
class Comparison:
    """Ours (mean and 95% CI half-width, in %) against the paper's number (in %)."""

    ours: float
    ci95: float | None
    paper: float

    @property
    def difference(self) -> float:
        """Ours minus the paper's."""
        return self.ours - self.paper

    @property
    def inside(self) -> bool | None:
        """Whether the paper's number lies inside our 95% CI (None without a CI)."""
        return None if self.ci95 is None else abs(self.difference) <= self.ci95


def compare(mean: float, ci95: float | None, paper: float) -> Comparison:
    """Compare a record's mean and CI (fractions in [0, 1]) with a paper's percentage."""
    return Comparison(100 * mean, None if ci95 is None else 100 * ci95, paper)


def binomial_ci95(accuracy: float, n: int) -> float:
    """Normal-approximation 95% half-width of an accuracy measured on `n` independent items."""
    z = float(stats.norm.ppf(0.975))
    return z * math.sqrt(accuracy * (1 - accuracy) / n)


def plan_rows(table: ReferenceTable, profile: Profile) -> list[Row]:
    """Every entry with each of our methods that stands for the paper's method."""
    rows = []
    for entry in table.entries:
        ours = table.methods[entry.method].ours
        if not ours:
            rows.append(Row(entry, None, NOT_IMPLEMENTED))
        elif entry.setting.task is None:
            rows.append(Row(entry, None, "no task of ours has this setting"))
        else:
            rows += [Row(entry, method, skip_reason(entry, method, profile)) for method in ours]
    return rows


def skip_reason(entry: Entry, method: str, profile: Profile) -> str | None:
    """Why `method` is not run for this entry (one with a task) under `profile` (None: it is)."""
    setting = (entry.setting.n_way, entry.setting.k_shot)
    if profile.methods is not None and method not in profile.methods:
        return f"not run (profile {profile.name})"
    if profile.settings is not None and setting not in profile.settings:
        return f"not run (profile {profile.name})"
    if resolve_method(method).trainable:
        if profile.trainable is not None and method not in profile.trainable:
            return f"not run (meta-trained; profile {profile.name})"
        if "train" not in TASKS.get(entry.setting.task or "").card.counts:
            return "not run: the task has no training classes"
    return None


def _group(row: Row) -> Group:
    setting = row.entry.setting
    return setting.task or "", setting.n_way, setting.k_shot, setting.n_query or DEFAULT_QUERY


def options_for(methods: set[str], options: Mapping[str, str]) -> dict[str, str]:
    """The profile's options that a sweep of `methods` can take: shared ones when one of its
    meta-trained methods has the field, scoped ones (`method.name`) for its own methods."""
    configs = [resolve_method(m).config for m in methods if resolve_method(m).trainable]
    fields = {f.name for config in configs for f in dataclasses.fields(config)}
    kept = {}
    for option, value in options.items():
        scope, dot, name = option.rpartition(".")
        if (scope in methods) if dot else (name in fields):
            kept[option] = value
    return kept


def run_rows(
    rows: list[Row], profile: Profile, options: RunOptions, encoder: str = DEFAULT_ENCODER
) -> dict[tuple[Group, str], Record]:
    """Run every runnable row, one sweep per task and spec; records by (group, method)."""
    groups: dict[Group, set[str]] = {}
    for row in rows:
        if row.skipped is None and row.method is not None:
            groups.setdefault(_group(row), set()).add(row.method)
    records = {}
    for group, methods in groups.items():
        task, n_way, k_shot, n_query = group
        trains = any(resolve_method(m).trainable for m in methods)
        sweep = Sweep(
            tasks=(task,),
            methods=tuple(sorted(methods)),
            specs=(EpisodeSpec(n_way, k_shot, n_query),),
            episodes=profile.episodes,
            seeds=profile.seeds,
            encoder=encoder,
            options=options_for(methods, profile.options) if trains else {},
        )
        for record in run_sweep(sweep, options).records:
            records[group, record["method"]] = record
    return records


def record_ci95(record: Record, data_dir: Path | None) -> float | None:
    """The record's CI; for one fixed episode, a binomial CI over its queries."""
    if record["n_episodes"] > 1 or record["protocol"] != "fixed":
        return record["ci95"]
    task = TASKS.get(record["task"]).load(data_dir, 1)
    (episode,) = task.split(record["eval_split"]).fixed_episodes
    return binomial_ci95(record["mean"], len(episode.query))


def side_by_side(
    rows: list[Row],
    records: Mapping[tuple[Group, str], Record],
    data_dir: Path | None,
) -> str:
    """The table: ours (mean ± CI), the paper's number, the difference, paper inside our CI."""
    lines = []
    cis: dict[str, float | None] = {}
    for row in rows:
        entry, setting = row.entry, row.entry.setting
        prefix = [
            entry.dataset,
            f"{setting.n_way}-way {setting.k_shot}-shot",
            entry.method,
            row.method or "-",
        ]
        record = None if row.skipped else records.get((_group(row), row.method or ""))
        if record is None or record["status"] != "ok":
            why = row.skipped or _failure(record)
            lines.append([*prefix, why, "", entry.printed, "", ""])
            continue
        key = record["key"]
        if key not in cis:
            cis[key] = record_ci95(record, data_dir)
        lines.append([*prefix, *_measured(record, cis[key], entry)])
    headers = ["data", "setting", "paper's method", "ours", "ours (%)", "episodes x seeds",
               "paper (%)", "ours - paper", "paper in our CI"]  # fmt: skip
    return tabulate(lines, headers=headers, tablefmt="github", disable_numparse=True)


def _measured(record: Record, ci95: float | None, entry: Entry) -> list[str]:
    """Ours (with the kept training step), episodes, the paper's number, difference, inside."""
    result = compare(record["mean"], ci95, entry.value)
    ours = f"{result.ours:.2f}" + ("" if result.ci95 is None else f" ± {result.ci95:.2f}")
    if record.get("training"):
        ours += f" (kept step {record['training']['best_step']}/{record['training']['steps']})"
    inside = {None: "-", True: "yes", False: "no"}[result.inside]
    return [ours, _behind(record), entry.printed, f"{result.difference:+.2f}", inside]


def _failure(record: Record | None) -> str:
    if record is None:
        return "not run"
    last = (record.get("error") or "").strip().splitlines() or ["unknown error"]
    return f"failed: {last[-1]}"


def _behind(record: Record) -> str:
    if record["protocol"] == "fixed":
        return f"{record['n_episodes']} fixed"
    return f"{record['episodes_per_seed']} x {len(record['seeds'])}"


def differences(table: ReferenceTable, profile: Profile, encoder: str) -> list[str]:
    """Every known difference in protocol: the table's own list, encoders, mappings, budget."""
    theirs = sorted({e.setting.encoder for e in table.entries})
    vectors = (
        "contextual word vectors" if table.data["metric"] == "entity-f1" else "sentence embeddings"
    )
    trained = sorted(
        m
        for method in table.methods.values()
        for m in method.ours
        if resolve_method(m).trainable and (profile.trainable is None or m in profile.trainable)
    )
    shared = "shared by every method" + (
        f" except {', '.join(trained)}, which train{'s' if len(trained) == 1 else ''} it first"
        if trained
        else ""
    )
    notes = [
        f"Encoder: ours is {encoder} (frozen {vectors}, {shared}); the paper's: "
        f"{'; '.join(theirs)}.",
        *table.protocol_differences,
    ]
    notes += [
        f"Method mapping {name} -> {', '.join(m.ours)} ({m.match}): {m.note}"
        for name, m in table.methods.items()
        if m.ours and m.note
    ]
    if any(e.setting.episodes is None for e in table.entries):
        notes.append("Episodes behind the paper's numbers: not stated in the source.")
    notes.append(f"Our run: {profile.describe()}.")
    return notes


def reproduce(
    name: str, profile: Profile, options: RunOptions, encoder: str = DEFAULT_ENCODER
) -> tuple[str, bool]:
    """Run table `name` under `profile`; returns the printed report and whether all cells ran."""
    table = load_table(name)
    rows = plan_rows(table, profile)
    records = run_rows(rows, profile, options, encoder)
    paper = table.data["paper"]
    source = table.data["verified_from"]
    header = [
        f"{table.name}: {table.title}",
        f"paper: {table.citation}",
        f"table: {table.data['source_table']['label']} ({table.data['metric']}, %)",
        f"verified from: {source['url']}" + ("" if table.data["verified"] else " (NOT verified)"),
    ]
    if paper.get("note"):
        header.append(f"note: {paper['note']}")
    body = side_by_side(rows, records, options.data_dir)
    notes = "\n".join(f"- {n}" for n in differences(table, profile, encoder))
    failed = any(r["status"] != "ok" for r in records.values())
    report = "\n".join(header) + f"\n\n{body}\n\nProtocol differences:\n{notes}\n"
    return report, not failed
