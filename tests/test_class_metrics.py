"""Macro-F1 and per-class reports: the numbers scikit-learn and seqeval give, in records, in
`results --per-class`, under `--metric macro-f1` in tables, the gate and reports, and clear
refusals for NER cells and records written before these fields."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from seqeval.metrics import classification_report
from sklearn.metrics import f1_score, precision_recall_fscore_support

from benchmark.analysis.metric_choice import with_metric
from benchmark.analysis.report import write_report
from benchmark.cli import main
from benchmark.core.errors import BenchmarkError
from benchmark.core.metrics import Scores, classification_scores, tagging_scores
from benchmark.core.stats import mean_ci
from benchmark.core.types import EpisodeSpec
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import load_records, migrate
from benchmark.engine.sweep import run_sweep


def test_macro_f1_and_class_tallies_match_scikit_learn():
    rng = random.Random(0)
    for _ in range(200):
        labels = [f"c{i}" for i in range(rng.randint(2, 6))]
        gold = [rng.choice(labels) for _ in range(rng.randint(1, 30))]
        predicted = [rng.choice(labels) if rng.random() < 0.6 else g for g in gold]
        scores = classification_scores(predicted, gold)
        assert scores.macro_f1[0] == pytest.approx(
            f1_score(gold, predicted, average="macro", zero_division=0), abs=1e-12
        )
        names = sorted(set(gold) | set(predicted))
        p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=names, zero_division=0)
        summary = scores.per_class()
        for i, name in enumerate(names):
            got = summary[name]
            assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
                (p[i], r[i], f[i], s[i]), abs=1e-12
            )


def test_per_type_entity_scores_match_seqeval():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O", "O"], ["O", "B-LOC", "O"]]
    report = classification_report(gold, predicted, output_dict=True, zero_division=0)
    summary = tagging_scores(gold, predicted).per_class()
    assert set(summary) == {"PER", "LOC", "ORG"}
    for kind, got in summary.items():
        want = report[kind]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx(
            (want["precision"], want["recall"], want["f1-score"], want["support"])
        )


def test_joined_scores_pool_the_tallies_of_every_episode():
    first = classification_scores(["a", "a", "b"], ["a", "b", "b"])
    second = classification_scores(["b", "c"], ["b", "c"])
    joined = Scores.join([first, second])
    assert joined.metric == first.metric + second.metric
    assert joined.per_class()["b"] == {"precision": 1.0, "recall": 2 / 3, "f1": 0.8,
                                       "support": 3, "predicted": 2}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("records")
    sweep = Sweep(("clinc150",), ("protonet", "logistic-regression"), (EpisodeSpec(5, 1, 5),),
                  episodes=20, seeds=(0, 1), encoder="hashing-bow")  # fmt: skip
    assert run_sweep(sweep, RunOptions(out=out, device="cpu", progress=False)).failed == 0
    return out


def test_records_carry_macro_f1_and_the_pooled_per_class_summary(store):
    for record in load_records(store):
        macro = record["macro_f1"]
        assert len(macro["per_episode"]) == len(record["per_episode"]) == 40
        assert macro["mean"] == mean_ci(macro["per_episode"]).mean
        assert 0 < macro["mean"] <= record["mean"] + 0.05  # macro-F1 tracks accuracy here
        classes = record["per_class"]
        assert sum(c["support"] for c in classes.values()) == 40 * 25  # every query, once
        assert sum(c["predicted"] for c in classes.values()) == 40 * 25


def test_results_per_class_and_metric_macro_f1(store, capsys):
    assert main(["results", str(store), "--per-class"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "| clinc150" in line]
    classes = {r["method"]: r["per_class"] for r in load_records(store)}
    assert len(lines) == sum(len(c) for c in classes.values())
    worst = min(classes["protonet"].items(), key=lambda kv: (kv[1]["f1"], kv[0]))
    first = next(line for line in lines if "protonet" in line)
    assert worst[0] in first and f"{100 * worst[1]['f1']:.1f}" in first
    assert main(["results", str(store), "--metric", "macro-f1"]) == 0
    table = capsys.readouterr().out
    for record in load_records(store):
        macro = record["macro_f1"]
        assert f"{100 * macro['mean']:.2f} ± {100 * macro['ci95']:.2f}" in table
    assert "macro-f1" in table


def test_macro_f1_view_keeps_ner_cells_and_refuses_ner_only_or_old_records(store):
    record = load_records(store)[0]
    ner = {**record, "task": "crossner-music", "metric": "entity-f1", "macro_f1": None}
    mixed = with_metric([record, ner], "macro-f1")
    assert mixed[0]["mean"] == record["macro_f1"]["mean"] and mixed[1] == ner
    with pytest.raises(BenchmarkError, match=r"NER.*entity F1"):
        with_metric([ner], "macro-f1")
    old = {k: v for k, v in record.items() if k not in ("macro_f1", "per_class")}
    migrated = migrate({**old, "schema_version": 2})
    assert migrated["macro_f1"] is None and migrated["per_class"] is None
    with pytest.raises(BenchmarkError, match="before records held macro-F1"):
        with_metric([migrated], "macro-f1")


def test_ner_only_folder_under_macro_f1_explains_entity_f1(store, tmp_path, capsys):
    record = load_records(store)[0]
    ner = {**record, "task": "crossner-music", "metric": "entity-f1", "macro_f1": None}
    (tmp_path / "ner.json").write_text(json.dumps(ner))
    assert main(["results", str(tmp_path), "--metric", "macro-f1"]) == 2
    error = capsys.readouterr().err
    assert "crossner-music" in error and "scored by entity F1" in error


def test_report_has_the_per_class_section_and_plot(store, tmp_path):
    written = write_report(store, tmp_path, ("md",), metric="macro-f1")
    assert tmp_path / "worst-classes.png" in written
    markdown = (tmp_path / "report.md").read_text()
    assert "## Per class" in markdown and "macro-f1" in markdown
