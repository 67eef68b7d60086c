"""A results store as a report: sections of text, tables and plots, written as markdown with
PNG files and as one self-contained HTML file."""

from __future__ import annotations

import base64
import html
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tabulate import tabulate

from benchmark.analysis.metric_choice import DEFAULT_METRIC, with_metric
from benchmark.analysis.plots import (
    Plot,
    plot_scores_by_task,
    plot_scores_vs_shots,
    plot_significance,
    plot_throughput,
    plot_worst_classes,
    series_colors,
    to_png,
)
from benchmark.analysis.series import (
    NOT_PAIRED,
    paired_comparisons,
    series_labels,
    significance_table,
)
from benchmark.analysis.tables import per_class_table, results_table, throughput_table
from benchmark.core.errors import DataFormatError
from benchmark.engine.store import Record, load_records, spec_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = ("md", "html")
DPI = 100
WORST_CLASSES = 5  # per cell, in the report's per-class table


@dataclass(frozen=True)
class Section:
    """One part of the report; `text` and `bullets` may hold `code` spans, nothing else."""

    title: str
    text: str = ""
    bullets: tuple[str, ...] = ()
    plot: Plot | None = None
    table: Callable[[str], str] | None = None  # tabulate format -> table


# ---------------------------------------------------------------- the report


def _counted(counter: Counter) -> str:
    return ", ".join(f"{value} ({n} cell{'s' * (n != 1)})" for value, n in counter.most_common())


def summary_bullets(records: Sequence[Record], store: Path) -> tuple[str, ...]:
    """What stands behind the report: records, tasks, methods, episodes, seeds, encoders,
    commits and package versions."""
    ok = [r for r in records if r.get("status") == "ok"]
    tasks = sorted({r["task"] for r in records})
    methods = sorted({r["method"] for r in records})
    encoders = Counter(
        f"{r['encoder']} ({r.get('encoder_revision') or 'revision unknown'})"
        if r.get("encoder")
        else "none (methods that read no embeddings)"
        for r in records
    )
    versions: dict[str, set[str]] = defaultdict(set)
    for record in records:
        for package, version in (record.get("versions") or {}).items():
            versions[package].add(str(version))
    created = sorted(r["created_at"] for r in records if r.get("created_at"))
    return (
        f"store: `{store}`",
        f"records: {len(records)} ({len(ok)} ok, {len(records) - len(ok)} failed)",
        f"tasks ({len(tasks)}): {', '.join(tasks)}",
        f"methods ({len(methods)}): {', '.join(methods)}",
        f"episodes: {sum(r['n_episodes'] for r in ok):,} scored in all; per cell "
        + _counted(Counter(f"{r['n_episodes']:,}" for r in ok)),
        "seeds: " + _counted(Counter(", ".join(map(str, r["seeds"])) for r in records)),
        "encoders: " + _counted(encoders),
        "git commits: " + _counted(Counter(r.get("git_commit") or "unknown" for r in records)),
        "versions: "
        + "; ".join(f"{p} {' / '.join(sorted(v))}" for p, v in sorted(versions.items())),
        f"created: {created[0]} to {created[-1]}" if created else "created: unknown",
    )


def failures_table(records: Sequence[Record], tablefmt: str = "github") -> str:
    """Failed cells with the last line of their error."""
    rows = []
    for r in records:
        if r.get("status") != "ok":
            lines = (r.get("error") or "").strip().splitlines() or ["unknown error"]
            rows.append([r["task"], r["method"], spec_label(r), lines[-1]])
    headers = ["task", "method", "spec", "last error line"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def build_sections(records: Sequence[Record], store: Path, dpi: int = DPI) -> list[Section]:
    """The report's sections in order, plots rendered at `dpi`."""

    def render(name: str, figure: Figure) -> Plot:
        return Plot(name, to_png(figure, dpi))

    ok = [r for r in records if r.get("status") == "ok"]
    failed = len(records) - len(ok)
    sections = [
        Section(
            "Summary",
            "Scores are the mean over all episodes of all seeds of a cell, ± the 95% confidence "
            "interval half-width, in points: a Wilson interval with the episodes' design effect "
            "for accuracy (its coverage is measured by `fewshot-bench stats-check`), Student-t "
            "over episodes for entity F1 and macro-F1 (each record's `interval` says which).",
            bullets=summary_bullets(records, store),
        )
    ]
    if failed:
        sections.append(
            Section(f"Failed cells ({failed})", table=lambda f: failures_table(records, f))
        )
    if not ok:
        return sections
    labels = series_labels(ok)
    colors = series_colors(list(labels.values()))
    comparisons = paired_comparisons(ok, labels)
    sections += [
        Section("Results", table=lambda f: results_table(records, f)),
        Section(
            "Score vs K-shot",
            "One panel per task and N-way/query spec; lines are means, bands 95% CIs.",
            plot=render("scores-vs-shots.png", plot_scores_vs_shots(ok, labels, colors)),
        ),
        Section(
            "Score per task",
            "One panel per K; error bars are 95% CIs.",
            plot=render("scores-by-task.png", plot_scores_by_task(ok, labels, colors)),
        ),
    ]
    significance = plot_significance(ok, labels, comparisons)
    if significance is not None:
        sections.append(
            Section(
                "Paired significance",
                "For every pair of methods of a task and spec that ran on identical episodes "
                "(same `episodes_fingerprint`): the paired t-test on their per-episode scores "
                f"and the mean difference A - B. Pairs on different episodes are `{NOT_PAIRED}` "
                "and never compared.",
                plot=render("paired-significance.png", significance),
                table=lambda f: significance_table(comparisons, f),
            )
        )
    worst = plot_worst_classes(ok, labels, colors)
    if worst is not None:
        sections.append(
            Section(
                "Per class",
                f"Precision, recall and F1 of each class (NER: entity type), pooled over a "
                f"cell's queries; the plot and the table show the {WORST_CLASSES} worst per "
                "cell (`fewshot-bench results --per-class` prints them all).",
                plot=render("worst-classes.png", worst),
                table=lambda f: per_class_table(records, f, worst=WORST_CLASSES),
            )
        )
    sections.append(
        Section(
            "Throughput",
            "Wall time of each cell (encoding included) split into encoder and method time.",
            plot=render("throughput.png", plot_throughput(ok, labels, colors)),
            table=lambda f: throughput_table(records, f),
        )
    )
    return sections


def _inline(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    """report.md: plots are linked as PNG files in the same folder."""
    parts = [f"# {title}"]
    for section in sections:
        parts.append(f"## {section.title}")
        if section.text:
            parts.append(section.text)
        if section.bullets:
            parts.append("\n".join(f"- {b}" for b in section.bullets))
        if section.plot:
            parts.append(f"![{section.title}]({section.plot.name})")
        if section.table:
            parts.append(section.table("github"))
    return "\n\n".join(parts) + "\n"


CSS = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1400px; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
th { background: #f0f0f0; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def to_html(title: str, sections: Sequence[Section]) -> str:
    """report.html: one file, plots embedded as base64 PNG data URIs, no external resources."""
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        if section.text:
            body.append(f"<p>{_inline(section.text)}</p>")
        if section.bullets:
            items = "".join(f"<li>{_inline(b)}</li>" for b in section.bullets)
            body.append(f"<ul>{items}</ul>")
        if section.plot:
            data = base64.b64encode(section.plot.png).decode("ascii")
            alt = html.escape(section.title, quote=True)
            body.append(f'<p><img alt="{alt}" src="data:image/png;base64,{data}"></p>')
        if section.table:
            body.append(section.table("html"))
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def load_store(store: Path) -> list[Record]:
    """The records of `store`; a missing folder or one without records is a user error."""
    records = load_records(store)
    if not records:
        raise DataFormatError(
            store, None, "no result records (*.json) here; write some with `fewshot-bench run`"
        )
    return records


def write_report(
    store: Path,
    out: Path | None = None,
    formats: Sequence[str] = FORMATS,
    dpi: int = DPI,
    metric: str = DEFAULT_METRIC,
) -> list[Path]:
    """Write report.md with its PNG plots (`md`) and/or report.html (`html`) into `out`
    (default `store/report`), plots at `dpi`, scores by `metric`; returns the paths written."""
    records = with_metric(load_store(store), metric)
    sections = build_sections(records, store, dpi)
    title = f"fewshot-bench report: {store.name or store}"
    out = store / "report" if out is None else out
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if "md" in formats:
        for section in sections:
            if section.plot:
                written.append(out / section.plot.name)
                written[-1].write_bytes(section.plot.png)
        written.append(out / "report.md")
        written[-1].write_text(to_markdown(title, sections), encoding="utf-8")
    if "html" in formats:
        written.append(out / "report.html")
        written[-1].write_text(to_html(title, sections), encoding="utf-8")
    return written
