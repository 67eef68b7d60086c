"""The regression gate: a suite's per-episode scores against a stored baseline, episode by episode.

A cell fails when its mean falls below the baseline's by more than `margin` points AND the paired
t-test on the identical episodes says the drop is significant (p < alpha). Frozen methods on
cached embeddings are deterministic, so an unchanged suite reproduces the baseline exactly; the
margin absorbs what differs across machines (a BLAS rounding that flips a query moves a 100-episode
mean by a few hundredths of a point), while a real degradation moves it by whole points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from tabulate import tabulate

from benchmark.analysis.cells import (
    EPISODE_FIELDS,
    METHOD_FIELDS,
    cell_id,
)
from benchmark.core.stats import mean_ci, paired_test
from benchmark.core.suites import SUITES
from benchmark.engine.store import Record, spec_label

BASELINE_VERSION = 1
DEFAULT_BASELINE = "baselines/ci.json"  # under results_dir()
DEFAULT_MARGIN = 1.0  # points
DEFAULT_ALPHA = 0.05


# What a baseline keeps of each record: what identifies the cell, and its scores.
CELL_FIELDS = (
    "task",
    "method",
    *METHOD_FIELDS,
    "encoder_revision",
    *EPISODE_FIELDS,
    "metric",
    "mean",
    "per_episode",
    "macro_f1",
)
UPDATE_HINT = "if the change is intended, rerun with --update-baseline"


@dataclass(frozen=True)
class Verdict:
    """One cell compared with its baseline: means in points and the paired test's p-value."""

    cell: Record
    baseline: float
    ours: float
    p_value: float
    margin: float
    alpha: float

    @property
    def difference(self) -> float:
        """Ours minus baseline, in points."""
        return self.ours - self.baseline

    @property
    def failed(self) -> bool:
        """Below the baseline by more than the margin, and significantly so."""
        return self.difference < -self.margin and self.p_value < self.alpha

    @property
    def label(self) -> str:
        """`FAIL`, `better` (significantly above by more than the margin) or `pass`."""
        if self.failed:
            return "FAIL"
        if self.difference > self.margin and self.p_value < self.alpha:
            return "better"
        return "pass"


def compare(
    ours: Mapping[str, Record],
    baseline: Mapping[str, Record],
    margin: float,
    alpha: float,
    test: str = "t",
) -> list[Verdict]:
    """Each cell of `ours` against the baseline cell of the same id (same episodes), by the
    paired `test` (t, wilcoxon or bootstrap)."""
    verdicts = []
    for name in sorted(ours):
        mine, theirs = ours[name]["per_episode"], baseline[name]["per_episode"]
        result = paired_test(mine, theirs, test)
        verdicts.append(
            Verdict(
                cell=ours[name],
                baseline=100 * mean_ci(theirs).mean,
                ours=100 * mean_ci(mine).mean,
                p_value=result.p_value,
                margin=margin,
                alpha=alpha,
            )
        )
    return verdicts


def verdict_table(verdicts: Sequence[Verdict], test: str = "t") -> str:
    """task, method, spec, baseline mean, ours, difference, margin, p-value, verdict."""
    rows = [
        [v.cell["task"], v.cell["method"], spec_label(v.cell), f"{v.baseline:.2f}",
         f"{v.ours:.2f}", f"{v.difference:+.2f}", f"{v.margin:.2f}", f"{v.p_value:.3g}", v.label]
        for v in verdicts
    ]  # fmt: skip
    headers = ["task", "method", "spec", "baseline (%)", "ours (%)", "difference", "margin",
               f"p (paired {test})", "verdict"]  # fmt: skip
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def baseline_document(suite_name: str, records: Sequence[Record]) -> Record:
    """The baseline file's content: the suite, the environment, and each cell's scores."""
    first = records[0]
    return {
        "baseline_version": BASELINE_VERSION,
        "suite": {"name": suite_name, "version": SUITES[suite_name].version},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {k: first[k] for k in ("versions", "git_commit", "device")},
        "cells": [{k: r.get(k) for k in CELL_FIELDS} for r in sorted(records, key=cell_id)],
    }


def failures(records: Sequence[Record], expected: Mapping[str, Record]) -> list[str]:
    """One line per expected cell whose record failed."""
    return [
        f"failed: {cell_id(r)}: {((r.get('error') or '').strip().splitlines() or ['?'])[-1]}"
        for r in records
        if r.get("status") != "ok" and cell_id(r) in expected
    ]
