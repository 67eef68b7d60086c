"""The report's figures: scores vs K-shot with 95% CI bands, scores and throughput per task,
and paired-test heatmaps.

matplotlib is imported only when a plot is drawn, so other commands do not pay for it; figures
are drawn on `matplotlib.figure.Figure` objects (Agg canvas), never through
pyplot's global state.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from benchmark.analysis.series import Comparison, grouped, panel_key, spec_key, stars
from benchmark.core.stats import PairedTest
from benchmark.engine.store import Record, spec_label

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.image import AxesImage


P_CAP = 10.0  # heatmap colours saturate at p = 1e-10


Color = tuple[float, float, float, float]


@dataclass(frozen=True)
class Plot:
    """A rendered figure: its file name next to report.md and its PNG bytes."""

    name: str
    png: bytes


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


def to_png(figure: Figure, dpi: int) -> bytes:
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
    groups = grouped(records, lambda r: labels[r["key"]])
    return [(labels[g[0]["key"]], g) for g in groups]


def plot_scores_vs_shots(
    records: Sequence[Record], labels: dict[str, str], colors: dict[str, Color]
) -> Figure:
    """Mean score (points) against K, a shaded 95% CI band per series; a panel per task and
    N-way/query spec."""
    panels = grouped(records, panel_key)
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
    facets = grouped(records, lambda r: r["k_shot"])
    widest = max(len(grouped(f, panel_key)) for f in facets)
    figure, axes = _figure(len(facets), cols=1, width=max(6.0, 1.6 * widest + 1.5), height=3.6)
    for ax, facet in zip(axes, facets, strict=True):
        groups = grouped(facet, panel_key)
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
        difference = f"{sign * 100 * test.mean_difference:+.1f}{stars(test.p_value)}"
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
    cells = [c for c in grouped(records, spec_key) if len(c) > 1]
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


def plot_worst_classes(
    records: Sequence[Record], labels: dict[str, str], colors: dict[str, Color], count: int = 8
) -> Figure | None:
    """Per task and full spec, the `count` classes (NER: entity types) with the lowest F1
    averaged over the methods, one horizontal bar per method; None without per-class records."""
    cells = [g for g in grouped([r for r in records if r.get("per_class")], spec_key) if g]
    if not cells:
        return None
    figure, axes = _figure(len(cells), cols=2, width=5.5, height=0.45 * count + 1.2)
    for ax, group in zip(axes, cells, strict=True):
        group.sort(key=lambda r: labels[r["key"]])
        names = sorted({c for r in group for c in r["per_class"]})
        mean_f1 = {c: np.mean([r["per_class"].get(c, {}).get("f1", 0.0) for r in group])
                   for c in names}  # fmt: skip
        worst = sorted(names, key=lambda c: (mean_f1[c], c))[:count][::-1]
        height = 0.8 / len(group)
        for i, record in enumerate(group):
            name = labels[record["key"]]
            f1 = [100 * record["per_class"].get(c, {}).get("f1", 0.0) for c in worst]
            offsets = np.arange(len(worst)) + height * (i - (len(group) - 1) / 2)
            ax.barh(offsets, f1, height, color=colors[name], label=name)
        ax.set_yticks(range(len(worst)), worst, fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_xlabel("F1 (%), pooled over the cell's queries", fontsize=8)
        ax.set_title(f"{group[0]['task']} {spec_label(group[0])}", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    _legend(figure, axes)
    figure.suptitle(f"The {count} worst classes per task and spec", fontsize="medium")
    return figure
