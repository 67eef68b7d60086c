"""`--split-id` ranges and `all`: each class split its own cells, and the across-split table
(mean over splits ± their standard deviation, a 95% interval with the split as the unit)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest
from scipy import stats

from benchmark.analysis.tables import across_splits, across_splits_table
from benchmark.cli import main
from benchmark.engine.store import load_records

RUN = ["run", "--task", "clinc150", "--method", "protonet,nearest-neighbour", "--encoder",
       "hashing-bow", "--k-shot", "1", "--n-query", "5", "--episodes", "15", "--seeds", "1",
       "--no-progress", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("splits")
    assert main([*RUN, "--split-id", "1-3", "--out", str(out)]) == 0
    return out


def test_each_split_is_its_own_cell(store):
    records = load_records(store)
    assert sorted((r["method"], r["class_split"]) for r in records) == [
        (m, f"protaugment-0{i}") for m in ("nearest-neighbour", "protonet") for i in (1, 2, 3)
    ]
    assert len({r["episodes_fingerprint"] for r in records if r["method"] == "protonet"}) == 3


def test_the_across_split_table_treats_splits_as_the_unit(store, capsys):
    records = load_records(store)
    groups = across_splits(records)
    assert [len(g) for g in groups] == [3, 3]
    table = across_splits_table(records)
    for group in groups:
        means = [100 * r["mean"] for r in group]
        half = stats.t.ppf(0.975, 2) * statistics.stdev(means) / 3**0.5
        row = next(line for line in table.splitlines() if f"| {group[0]['method']} " in line)
        assert f"{statistics.mean(means):.2f} ± {statistics.stdev(means):.2f}" in row
        assert f"± {half:.2f}" in row and f"protaugment-02: {means[1]:.2f}" in row
    assert main(["results", str(store)]) == 0
    out = capsys.readouterr().out
    assert "Across class splits:" in out and "| protaugment-03 |" in out


def test_all_runs_every_split_and_unknown_ids_list_the_real_ones(tmp_path, capsys):
    assert main([*RUN, "--method", "protonet", "--split-id", "all", "--out", str(tmp_path)]) == 0
    assert len(load_records(tmp_path)) == 5
    assert main([*RUN, "--split-id", "2,7", "--out", str(tmp_path / "no")]) == 2
    assert "--split-id 7: task 'clinc150' has class splits 1, 2, 3, 4, 5" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
