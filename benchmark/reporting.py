"""`fewshot-bench report`: a markdown report with PNG plots and a self-contained HTML report of a
results store: scores vs K-shot with 95% CI bands, scores and throughput per task, and paired
tests between methods that ran on identical episodes.

matplotlib is imported only when a plot is drawn, so other commands do not pay for it; figures
are drawn on `matplotlib.figure.Figure` objects (Agg canvas), never through pyplot's global state.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tabulate import tabulate

from benchmark.errors import DataFormatError
from benchmark.report import results_table, throughput_table
from benchmark.stats import PairedTest, paired_test
from benchmark.store import Record, load_records, spec_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage

FORMATS = ("md", "html")
DPI = 100
NOT_PAIRED = "not paired (different episodes)"
P_CAP = 10.0  # heatmap colours saturate at p = 1e-10
STARS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
Color = tuple[float, float, float, float]


@dataclass(frozen=True)
class Comparison:
    """Two series of one task and spec; `test` is None when they ran on different episodes."""

    task: str
    spec: str
    a: str
    b: str
    test: PairedTest | None


@dataclass(frozen=True)
class Plot:
    """A rendered figure: its file name next to report.md and its PNG bytes."""

    name: str
    png: bytes


@dataclass(frozen=True)
class Section:
    """One part of the report; `text` and `bullets` may hold `code` spans, nothing else."""

    title: str
    text: str = ""
    bullets: tuple[str, ...] = ()
    plot: Plot | None = None
    table: Callable[[str], str] | None = None  # tabulate format -> table


# ---------------------------------------------------------------- grouping and labels


def _query(record: Record) -> int:
    return -1 if record["n_query"] is None else record["n_query"]


def _panel_key(record: Record) -> tuple:
    """Task and N-way/query spec: one curve over K per series."""
    return (record["task"], record["n_way"], _query(record))


def _cell_key(record: Record) -> tuple:
    """Task and full spec: the records that may be compared with each other."""
    return (*_panel_key(record), record["k_shot"])


def _group(records: Sequence[Record], key: Callable[[Record], Hashable]) -> list[list[Record]]:
    groups: dict = defaultdict(list)
    for record in records:
        groups[key(record)].append(record)
    return [groups[k] for k in sorted(groups)]


def _run(record: Record) -> str:
    return f"seeds {','.join(map(str, record['seeds']))} x {record['episodes_per_seed']}"


def _describers(group: Sequence[Record]) -> list[Callable[[Record], str]]:
    """The fields that tell a method's records of one task and spec apart, each as a short
    string."""
    repeated = [cell for cell in _group(group, _cell_key) if len(cell) > 1]
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
    for group in _group(records, lambda r: r["method"]):
        describers = _describers(group)
        for record in group:
            extra = ", ".join(d(record) for d in describers)
            labels[record["key"]] = f"{record['method']} [{extra}]" if extra else record["method"]
        named = Counter((_cell_key(r), labels[r["key"]]) for r in group)
        for record in group:
            if named[(_cell_key(record), labels[record["key"]])] > 1:
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
    for cell in _group(records, _cell_key):
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


def _stars(p: float) -> str:
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


# ---------------------------------------------------------------- figures


def _figure(panels: int, cols: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    """A constrained-layout figure with `panels` axes on a grid of `cols` columns."""
    from matplotlib.figure import Figure

    cols = min(cols, panels)
    rows = math.ceil(panels / cols)
    figure = Figure(figsize=(width * cols, height * rows + 0.8), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel().tolist()
    for unused in axes[panels:]:
        unused.set_visible(False)
    return figure, axes[:panels]


def _png(figure: Figure, dpi: int) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()


def series_colors(labels: Sequence[str]) -> dict[str, Color]:
    """One colour per series name, the same in every figure."""
    from matplotlib import colormaps

    names = sorted(set(labels))
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def _legend(figure: Figure, axes: Sequence[Axes]) -> None:
    """One legend below all panels, each series once."""
    handles: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    names = sorted(handles)
    columns = max(1, min(len(names), int(figure.get_figwidth() / 2.4)))
    figure.legend([handles[n] for n in names], names, loc="outside lower center", ncols=columns)


def _panel_title(record: Record) -> str:
    queries = "fixed episodes" if record["n_query"] is None else f"{record['n_query']} queries"
    return f"{record['task']}: {record['n_way']}-way, {queries}"


def _by_label(records: Sequence[Record], labels: dict[str, str]) -> list[tuple[str, list]]:
    groups = _group(records, lambda r: labels[r["key"]])
    return [(labels[g[0]["key"]], g) for g in groups]


def plot_scores_vs_shots(
    records: Sequence[Record], labels: dict[str, str], colors: dict[str, Color]
) -> Figure:
    """Mean score (points) against K, a shaded 95% CI band per series; a panel per task and
    N-way/query spec."""
    panels = _group(records, _panel_key)
    figure, axes = _figure(len(panels), cols=3, width=4.4, height=3.3)
    for ax, panel in zip(axes, panels, strict=True):
        for label, series in _by_label(panel, labels):
            series.sort(key=lambda r: r["k_shot"])
            shots = [r["k_shot"] for r in series]
            means = [100 * r["mean"] for r in series]
            halves = [100 * (r["ci95"] or 0.0) for r in series]
            if len(shots) == 1:  # no band to draw: an error bar
                ax.errorbar(shots, means, halves, fmt="o", capsize=3, color=colors[label])
            ax.plot(shots, means, marker="o", markersize=4, color=colors[label], label=label)
            ax.fill_between(
                shots,
                [m - h for m, h in zip(means, halves, strict=True)],
                [m + h for m, h in zip(means, halves, strict=True)],
                color=colors[label],
                alpha=0.2,
                linewidth=0,
            )
        ax.set_title(_panel_title(panel[0]), fontsize=10)
        ax.set_xlabel("K (shots per class)")
        ax.set_ylabel(f"{panel[0]['metric']} (%)")
        ax.set_xticks(sorted({r["k_shot"] for r in panel}))
        ax.grid(alpha=0.3)
    _legend(figure, axes)
    figure.suptitle("Score vs K-shot: mean and 95% CI band", fontsize="medium")
    return figure


def _tick(record: Record) -> str:
    queries = "fixed" if record["n_query"] is None else f"{record['n_query']}q"
    return f"{record['task']}\n{record['n_way']}w-{queries}"


def _bars(
    records: Sequence[Record],
    labels: dict[str, str],
    colors: dict[str, Color],
    value: Callable[[Record], tuple[float, float | None]],
) -> tuple[Figure, list[Axes]]:
    """A facet per K; in each, a group of bars per task and spec, one bar per series there."""
    facets = _group(records, lambda r: r["k_shot"])
    widest = max(len(_group(f, _panel_key)) for f in facets)
    figure, axes = _figure(len(facets), cols=1, width=max(6.0, 1.6 * widest + 1.5), height=3.6)
    for ax, facet in zip(axes, facets, strict=True):
        groups = _group(facet, _panel_key)
        width = 0.8 / max(len(g) for g in groups)
        for x, group in enumerate(groups):
            group.sort(key=lambda r: labels[r["key"]])
            for i, record in enumerate(group):
                name = labels[record["key"]]
                y, error = value(record)
                offset = width * (i - (len(group) - 1) / 2)
                ax.bar(x + offset, y, width, yerr=error, capsize=2, color=colors[name], label=name)
        ax.set_xticks(range(len(groups)), [_tick(g[0]) for g in groups], fontsize=8)
        ax.set_title(f"K = {facet[0]['k_shot']}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    _legend(figure, axes)
    return figure, axes


def plot_scores_by_task(
    records: Sequence[Record], labels: dict[str, str], colors: dict[str, Color]
) -> Figure:
    """Mean score with 95% CI error bars, methods side by side, grouped by task; a facet per K."""
    figure, axes = _bars(
        records, labels, colors, lambda r: (100 * r["mean"], 100 * (r["ci95"] or 0.0))
    )
    metrics = ", ".join(sorted({r["metric"] for r in records}))
    for ax in axes:
        ax.set_ylabel(f"{metrics} (%)")
    figure.suptitle("Score per task: mean and 95% CI", fontsize="medium")
    return figure


def spans_decades(values: Sequence[float]) -> bool:
    """True when the largest positive value is at least 100 times the smallest."""
    positive = [v for v in values if v > 0]
    return bool(positive) and max(positive) >= 100 * min(positive)


def plot_throughput(
    records: Sequence[Record], labels: dict[str, str], colors: dict[str, Color]
) -> Figure:
    """Episodes per second per method and task (log axis when rates span two decades)."""
    figure, axes = _bars(
        records, labels, colors, lambda r: (r["throughput"]["episodes_per_s"], None)
    )
    log = spans_decades([r["throughput"]["episodes_per_s"] for r in records])
    for ax in axes:
        ax.set_ylabel("episodes/s" + (" (log scale)" if log else ""))
        if log:
            ax.set_yscale("log")
    figure.suptitle("Throughput: episodes per second, encoding included", fontsize="medium")
    return figure


def _signed_strength(test: PairedTest, sign: int) -> float:
    """sign(difference) x -log10 p, capped at P_CAP."""
    strength = min(-math.log10(max(test.p_value, 10**-P_CAP)), P_CAP)
    return math.copysign(strength, sign * test.mean_difference) if strength else 0.0


def _heatmap(
    ax: Axes, names: list[str], tests: dict[tuple[str, str], PairedTest | None]
) -> AxesImage:
    """Row minus column: colour by signed -log10 p, text the difference in points and stars."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    size = len(names)
    matrix = np.full((size, size), np.nan)
    for i, j in itertools.product(range(size), repeat=2):
        if i == j:
            continue
        sign = 1 if i < j else -1
        test = tests[(names[min(i, j)], names[max(i, j)])]
        if test is None:
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, color="0.8"))
            ax.text(j, i, "n/p", ha="center", va="center", fontsize=7, color="0.3")
            continue
        matrix[i, j] = _signed_strength(test, sign)
        difference = f"{sign * 100 * test.mean_difference:+.1f}{_stars(test.p_value)}"
        color = "white" if abs(matrix[i, j]) > 0.6 * P_CAP else "black"
        ax.text(j, i, difference, ha="center", va="center", fontsize=7, color=color)
    cmap = colormaps["RdBu_r"].with_extremes(bad="white")
    image = ax.imshow(matrix, cmap=cmap, vmin=-P_CAP, vmax=P_CAP)
    ax.set_xticks(range(size), names, rotation=40, ha="right", fontsize=7)
    ax.set_yticks(range(size), names, fontsize=7)
    return image


def plot_significance(
    records: Sequence[Record], labels: dict[str, str], comparisons: Sequence[Comparison]
) -> Figure | None:
    """A paired-test matrix per task and spec with at least two series; None if there is none."""
    cells = [c for c in _group(records, _cell_key) if len(c) > 1]
    if not cells:
        return None
    tests = {(c.task, c.spec, c.a, c.b): c.test for c in comparisons}
    figure, axes = _figure(len(cells), cols=3, width=4.6, height=4.2)
    for ax, cell in zip(axes, cells, strict=True):
        task, spec = cell[0]["task"], spec_label(cell[0])
        names = sorted(labels[r["key"]] for r in cell)
        pairs = {(a, b): tests[(task, spec, a, b)] for a, b in itertools.combinations(names, 2)}
        image = _heatmap(ax, names, pairs)
        ax.set_title(f"{task} {spec}", fontsize=10)
    figure.colorbar(
        image, ax=axes, shrink=0.6, label="sign(row - column) x -log10 p (capped at 10)"
    )
    figure.suptitle(
        "Paired t-tests, row - column mean difference in points\n"
        "* p<0.05, ** p<0.01, *** p<0.001; n/p: not paired",
        fontsize="medium",
    )
    return figure


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
        return Plot(name, _png(figure, dpi))

    ok = [r for r in records if r.get("status") == "ok"]
    failed = len(records) - len(ok)
    sections = [
        Section(
            "Summary",
            "Scores are the mean over all episodes of all seeds of a cell, ± the Student-t 95% "
            "confidence interval half-width, in points.",
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
    store: Path, out: Path | None = None, formats: Sequence[str] = FORMATS, dpi: int = DPI
) -> list[Path]:
    """Write report.md with its PNG plots (`md`) and/or report.html (`html`) into `out`
    (default `store/report`), plots at `dpi`; returns the paths written."""
    records = load_store(store)
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


# ---------------------------------------------------------------- command line


def _formats(value: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    if not chosen or set(chosen) - set(FORMATS):
        raise argparse.ArgumentTypeError(f"expected md, html or md,html, got {value!r}")
    return chosen


def _dpi(value: str) -> int:
    if not value.isdigit() or not 20 <= int(value) <= 600:
        raise argparse.ArgumentTypeError(f"expected dots per inch from 20 to 600, got {value!r}")
    return int(value)


def add_report_parser(commands: argparse._SubParsersAction) -> None:
    """The `report` subcommand."""
    report = commands.add_parser(
        "report",
        help="write a markdown and an HTML report with plots of a results folder",
        description="Read every record of STORE and write report.md with PNG plots next to it "
        "and a self-contained report.html (plots embedded, no external files): a summary of the "
        "records, tasks, methods, episodes, seeds, encoders, commits and versions behind it; "
        "failed cells; the results table; score vs K-shot with 95% CI bands; scores per task; "
        "paired t-tests between methods that ran on identical episodes (matrix and table); "
        "and throughput.",
    )
    report.add_argument("store", metavar="STORE", help="results folder written by `run --out`")
    report.add_argument(
        "--out", metavar="DIR", default=None, help="where the report goes (default STORE/report)"
    )
    report.add_argument(
        "--format",
        type=_formats,
        default=FORMATS,
        help="md (report.md + PNG files), html (report.html) or md,html (default both)",
    )
    report.add_argument(
        "--dpi", type=_dpi, default=DPI, help=f"resolution of the plots (default {DPI})"
    )


def command_report(args: argparse.Namespace) -> int:
    """Write the report and print the paths written."""
    store = Path(args.store)
    out = Path(args.out) if args.out else None
    for path in write_report(store, out, args.format, args.dpi):
        print(path)
    return 0
