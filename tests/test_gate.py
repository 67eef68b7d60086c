"""The regression gate: an unchanged suite passes, a degraded method fails, and baselines that
cannot be compared are refused with the file and the cell."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.commands.check import load_baseline
from benchmark.commands.suite_runs import SuiteRun, expected_cells
from benchmark.core import suites
from benchmark.core.suites import Suite

from helpers import class_means

REPO = Path(__file__).resolve().parent.parent
FLAKY = "test_gate:FlakyProtoNet"
TINY = Suite(
    "test-gate",
    1,
    (("--task", "clinc150", "--method", f"protonet,{FLAKY}"),),
    ("--encoder", "hashing-bow", "--n-way", "5", "--k-shot", "1,5", "--n-query", "5",
     "--episodes", "40", "--seeds", "1"),
)  # fmt: skip


class FlakyProtoNet:
    """ProtoNet (squared Euclidean) that answers a wrong label on `wrong_rate` of the queries."""

    wrong_rate = 0.0  # not a config option: changing it is a regression the config cannot see

    def __init__(self, config: object, context: object) -> None:
        self.context = context

    def fit(self, support: list, rng: random.Random) -> Flaky:
        names, prototypes = class_means(self.context, support)
        return Flaky(self.context, names, prototypes, random.Random(rng.random()), self.wrong_rate)


@dataclass(frozen=True)
class Flaky:
    context: object
    names: list
    prototypes: torch.Tensor
    rng: random.Random
    wrong_rate: float

    def predict(self, texts: list[str]) -> list[str]:
        best = torch.cdist(self.context.embed(texts), self.prototypes).argmin(-1).tolist()
        labels = [self.names[i] for i in best]
        return [
            self.rng.choice([n for n in self.names if n != label])
            if self.rng.random() < self.wrong_rate
            else label
            for label in labels
        ]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline of the tiny suite, written by `check --update-baseline`."""
    path = tmp_path_factory.mktemp("gate") / "baseline.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(suites.SUITES, TINY.name, TINY)
        assert check("--baseline", str(path), "--update-baseline") == 0
    return path


@pytest.fixture(autouse=True)
def tiny_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(suites.SUITES, TINY.name, TINY)


def check(*argv: str) -> int:
    return main(["check", "--suite", TINY.name, "--no-progress", *argv])


def table_rows(stdout: str) -> dict[tuple[str, str], list[str]]:
    """The verdict table's rows by (method, spec)."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in stdout.splitlines()
            if line.startswith("| clinc150")]  # fmt: skip
    return {(row[1], row[2]): row for row in rows}


def test_baseline_holds_every_cell_with_per_episode_scores(baseline):
    document = json.loads(baseline.read_text())
    assert document["suite"] == {"name": "test-gate", "version": 1}
    cells = {(c["method"], c["k_shot"]): c for c in document["cells"]}
    assert set(cells) == {(m, k) for m in ("protonet", FLAKY) for k in (1, 5)}
    for cell in cells.values():
        assert len(cell["per_episode"]) == 40
        assert cell["mean"] == pytest.approx(sum(cell["per_episode"]) / 40)
        assert cell["method_config"]["name"] == cell["method"]
    # same episodes for both methods; at wrong_rate 0 the fixture is ProtoNet itself
    assert cells["protonet", 1]["episodes_fingerprint"] == cells[FLAKY, 1]["episodes_fingerprint"]
    assert cells["protonet", 5]["per_episode"] == cells[FLAKY, 5]["per_episode"]


def test_unchanged_suite_passes(baseline, capsys):
    assert check("--baseline", str(baseline)) == 0
    stdout = capsys.readouterr().out
    rows = table_rows(stdout)
    assert len(rows) == 4
    for row in rows.values():
        assert row[3] == row[4] and row[5] == "+0.00" and row[7] == "1" and row[8] == "pass"
    assert "gate passed: none of 4 cells fell below" in stdout


def test_degraded_method_fails_the_gate(baseline, capsys, monkeypatch):
    monkeypatch.setattr(FlakyProtoNet, "wrong_rate", 0.3)
    assert check("--baseline", str(baseline)) == 1
    stdout = capsys.readouterr().out
    rows = table_rows(stdout)
    for spec in ("5w-1s-5q", "5w-5s-5q"):
        flaky, protonet = rows[FLAKY, spec], rows["protonet", spec]
        assert protonet[5] == "+0.00" and protonet[8] == "pass"
        assert float(flaky[5]) < -10 and float(flaky[7]) < 1e-6 and flaky[8] == "FAIL"
        assert float(flaky[3]) - float(flaky[4]) == pytest.approx(-float(flaky[5]), abs=0.011)
    assert "gate FAILED: 2 of 4 cells fell below" in stdout


def test_the_gate_tests_macro_f1_when_asked(baseline, capsys, monkeypatch):
    cells = {(c["method"], c["k_shot"]): c for c in json.loads(baseline.read_text())["cells"]}
    assert check("--baseline", str(baseline), "--metric", "macro-f1") == 0
    for (method, spec), row in table_rows(capsys.readouterr().out).items():
        macro = cells[method, int(spec.split("-")[1][:-1])]["macro_f1"]
        assert row[3] == f"{100 * macro['mean']:.2f}" == row[4] and row[8] == "pass"
    monkeypatch.setattr(FlakyProtoNet, "wrong_rate", 0.3)
    assert check("--baseline", str(baseline), "--metric", "macro-f1") == 1
    assert "gate FAILED: 2 of 4 cells fell below" in capsys.readouterr().out


def test_the_gate_can_use_the_paired_bootstrap(baseline, capsys, monkeypatch):
    assert check("--baseline", str(baseline), "--test", "bootstrap") == 0
    assert "p (paired bootstrap)" in capsys.readouterr().out
    monkeypatch.setattr(FlakyProtoNet, "wrong_rate", 0.3)
    assert check("--baseline", str(baseline), "--test", "bootstrap") == 1
    out = capsys.readouterr().out
    assert "gate FAILED: 2 of 4 cells fell below" in out and "paired-bootstrap p < 0.05" in out


def test_results_folder_is_read_instead_of_running(baseline, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(FlakyProtoNet, "wrong_rate", 0.3)
    out = tmp_path / "records"
    assert check("--baseline", str(baseline), "--out", str(out)) == 1
    ran = table_rows(capsys.readouterr().out)
    assert len(list(out.glob("*.json"))) == 4
    monkeypatch.setattr(FlakyProtoNet, "wrong_rate", 0.0)  # would pass if it ran again
    assert check("--baseline", str(baseline), str(out)) == 1
    assert table_rows(capsys.readouterr().out) == ran


def edited(baseline: Path, tmp_path: Path, edit) -> Path:
    document = json.loads(baseline.read_text())
    edit(document)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


def first(document: dict, method: str = "protonet", k_shot: int = 1) -> dict:
    return next(c for c in document["cells"] if c["method"] == method and c["k_shot"] == k_shot)


def refusal(path: Path, capsys) -> str:
    assert check("--baseline", str(path)) == 2
    err = capsys.readouterr().err
    assert f"refused {path}:" in err
    return err


def test_schema_failure_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: first(d).update(per_episode="high"))
    err = refusal(path, capsys)
    assert (
        f"{path}: cell clinc150 protonet 5w-1s-5q, field per_episode: 'high' is not of type" in err
    )
    assert "results/schema/baseline.schema.json" in err


def test_other_task_version_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: first(d, FLAKY, 5).update(task_version="0"))
    err = refusal(path, capsys)
    version = first(json.loads(baseline.read_text()))["task_version"]
    assert (
        f"{path}: cell clinc150 {FLAKY} 5w-5s-5q: task version '0', but the task is now "
        f"version '{version}'"
    ) in err
    assert "--update-baseline" in err


def test_fingerprint_mismatch_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: first(d).update(episodes_fingerprint="0" * 64))
    err = refusal(path, capsys)
    assert f"{path}: cell clinc150 protonet 5w-1s-5q: episodes fingerprint 000000000000..." in err
    assert "(another episode set)" in err


def test_missing_cell_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: d["cells"].remove(first(d, "protonet", 5)))
    err = refusal(path, capsys)
    assert f"{path}: cell clinc150 protonet 5w-5s-5q: missing" in err


def test_committed_baseline_matches_the_quick_suite():
    run = SuiteRun(suites.SUITES["quick"], progress=False)
    cells = load_baseline(REPO / "results" / "baselines" / "ci.json", run, expected_cells(run))
    assert len(cells) == 12
    assert {c["task"] for c in cells.values()} == {"clinc150", "huffpost"}
    assert all(len(c["per_episode"]) == 100 for c in cells.values())


def test_non_finite_score_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: first(d)["per_episode"].__setitem__(3, math.nan))
    err = refusal(path, capsys)
    assert (
        f"{path}: cell clinc150 protonet 5w-1s-5q: 1 per-episode scores are not in [0, 1], "
        "first at episode 3: nan"
    ) in err


def test_cell_this_run_does_not_produce_is_refused(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: d["cells"].append({**first(d), "task": "sst2"}))
    err = refusal(path, capsys)
    assert f"{path}: cell sst2 protonet 5w-1s-5q: not a cell of this run" in err
    assert "pass --data-dir" in err


def test_margin_and_alpha_out_of_range_are_refused(baseline, capsys):
    assert check("--baseline", str(baseline), "--margin", "-5") == 2
    assert "the margin must be >= 0 and alpha in (0, 1]" in capsys.readouterr().err
    assert check("--baseline", str(baseline), "--alpha", "2") == 2
    capsys.readouterr()


def test_another_suites_baseline_suggests_the_right_file_not_an_update(baseline, tmp_path, capsys):
    path = edited(baseline, tmp_path, lambda d: d["suite"].update(name="default"))
    err = refusal(path, capsys)
    assert "give the baseline of suite" in err and "--baseline FILE" in err
