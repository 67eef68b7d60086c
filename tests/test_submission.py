"""Submissions: a plug-in method's bundle goes through `submit` onto the `leaderboard`, and
bundles that cannot be compared are refused with the file and the cell."""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from benchmark.cli import main
from benchmark.core import suites
from benchmark.core.stats import mean_ci, paired_test
from benchmark.core.suites import Suite
from benchmark.engine.store import spec_label

from helpers import class_means, expected_summary

PLUGIN = "test_submission:L1Centroid"
TINY = Suite(
    "test-submit",
    1,
    (("--task", "clinc150", "--method", "protonet,nearest-neighbour"),),
    ("--encoder", "hashing-bow", "--n-way", "5", "--k-shot", "1,5", "--n-query", "5",
     "--episodes", "15", "--seeds", "2"),
)  # fmt: skip
SLOTS = ("5w-1s-5q", "5w-5s-5q")


class L1Centroid:
    """Nearest class centroid under the L1 distance (the README's plug-in example)."""

    def __init__(self, config: object, context: object) -> None:
        self.context = context

    def fit(self, support: list, rng: random.Random) -> Centroids:
        return Centroids(self.context, *class_means(self.context, support))


@dataclass(frozen=True)
class Centroids:
    context: object
    names: list
    centroids: torch.Tensor

    def predict(self, texts: list[str]) -> list[str]:
        distances = torch.cdist(self.context.embed(texts), self.centroids, p=1)
        return [self.names[i] for i in distances.argmin(-1).tolist()]


def submit(method: str, out: Path) -> int:
    return main(["submit", "--suite", TINY.name, "--method", method, "--out", str(out),
                 "--device", "cpu", "--no-progress"])  # fmt: skip


@pytest.fixture(autouse=True)
def tiny_suite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(suites.SUITES, TINY.name, TINY)


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The plug-in's bundle, and a folder holding the built-in protonet's."""
    folder = tmp_path_factory.mktemp("bundles")
    (folder / "builtin").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(suites.SUITES, TINY.name, TINY)
        assert submit(PLUGIN, folder / "mine.json") == 0
        assert submit("protonet", folder / "builtin" / "protonet.json") == 0
    return folder / "mine.json", folder / "builtin"


def records(path: Path) -> dict[str, dict]:
    """A bundle's records by spec."""
    return {spec_label(r): r for r in json.loads(path.read_text())["records"]}


def test_bundle_describes_method_suite_and_episodes(submitted):
    mine, builtin = submitted
    document = json.loads(mine.read_text())
    assert document["method"] == {
        "name": PLUGIN,
        "config": {"name": PLUGIN},
        "kinds": ["classification"],
        "source": {
            "object": "test_submission:L1Centroid",
            "file_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        },
    }
    assert document["suite"] == {"name": "test-submit", "version": 1}
    assert document["environment"]["device"] == "cpu"
    assert "torch" in document["environment"]["versions"]
    ours, theirs = records(mine), records(builtin / "protonet.json")
    assert set(ours) == set(SLOTS)
    for slot in SLOTS:
        assert ours[slot]["seeds"] == [0, 1] and len(ours[slot]["per_episode"]) == 30
        assert ours[slot]["episodes_fingerprint"] == theirs[slot]["episodes_fingerprint"]


def test_submitted_plugin_appears_on_the_leaderboard(submitted, capsys):
    mine, builtin = submitted
    assert main(["leaderboard", str(mine), str(builtin)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("# Leaderboard: suite test-submit (version 1), 2 bundles")
    rows = {(row[1], row[3]): row for row in (
        [c.strip() for c in line.strip("|").split("|")]
        for line in stdout.splitlines() if line.startswith("| clinc150")
    )}  # fmt: skip
    assert set(rows) == {(s, m) for s in SLOTS for m in (PLUGIN, "protonet")}
    ours, theirs = records(mine), records(builtin / "protonet.json")
    for slot in SLOTS:
        a, b = ours[slot]["per_episode"], theirs[slot]["per_episode"]
        summary, test = expected_summary(ours[slot]), paired_test(a, b)
        row = rows[slot, PLUGIN]
        assert row[4] == f"{100 * summary.mean:.2f} ± {100 * summary.ci95:.2f}"
        assert row[5] == "30 (2)" and row[6] == "protonet"
        assert row[7].rstrip("*") == f"{100 * test.mean_difference:+.2f}"
        assert row[8] == f"{test.p_value:.3g}"
        better = mean_ci(a).mean > mean_ci(b).mean
        assert row[2] == ("1" if better else "2") and rows[slot, "protonet"][6] == PLUGIN
    assert main(["leaderboard", str(mine), str(builtin), "--test", "bootstrap"]) == 0
    stdout = capsys.readouterr().out
    assert "paired bootstrap's p-value" in stdout
    for slot in SLOTS:
        a, b = ours[slot]["per_episode"], theirs[slot]["per_episode"]
        p_value = paired_test(a, b, "bootstrap").p_value
        assert any(line.startswith(f"| clinc150 | {slot} |") and f"| {p_value:.3g} |" in line
                   for line in stdout.splitlines())  # fmt: skip


def edited(path: Path, tmp_path: Path, edit) -> Path:
    document = json.loads(path.read_text())
    edit(document)
    target = tmp_path / "edited.json"
    target.write_text(json.dumps(document))
    return target


def one_shot(document: dict) -> dict:
    return next(r for r in document["records"] if r["k_shot"] == 1)


def refusal(path: Path, builtin: Path, capsys) -> str:
    assert main(["leaderboard", str(path), str(builtin)]) == 2
    err = capsys.readouterr().err
    assert f"refused {path}:" in err
    return err


def test_schema_failure_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: one_shot(d).pop("per_episode"))
    err = refusal(path, builtin, capsys)
    assert f"{path}: cell clinc150 {PLUGIN} 5w-1s-5q: 'per_episode' is a required property" in err


def test_other_task_version_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: one_shot(d).update(task_version="0"))
    err = refusal(path, builtin, capsys)
    assert f"{path}: cell clinc150 5w-1s-5q: task version '0', but the task is now version" in err


def test_fingerprint_mismatch_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: one_shot(d).update(episodes_fingerprint="f" * 64))
    err = refusal(path, builtin, capsys)
    assert f"{path}: cell clinc150 5w-1s-5q: episodes fingerprint ffffffffffff..." in err


def test_missing_cell_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: d["records"].remove(one_shot(d)))
    err = refusal(path, builtin, capsys)
    assert f"{path}: cell clinc150 5w-1s-5q: missing" in err


def test_other_suite_version_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: d["suite"].update(version=2))
    err = refusal(path, builtin, capsys)
    assert f"{path}: bundle of suite test-submit version 2; known suites:" in err


def test_other_encoder_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: one_shot(d).update(encoder="another-encoder"))
    err = refusal(path, builtin, capsys)
    assert (
        f"{path}: cell clinc150 {PLUGIN} 5w-1s-5q: encoder 'another-encoder', the suite's is "
        "hashing-bow"
    ) in err


def test_record_config_other_than_the_bundles_is_refused(submitted, tmp_path, capsys):
    mine, builtin = submitted
    path = edited(mine, tmp_path, lambda d: one_shot(d)["method_config"].update(p=2))
    err = refusal(path, builtin, capsys)
    assert f"{path}: cell clinc150 {PLUGIN} 5w-1s-5q: method config " in err
    assert "'p': 2} is not the bundle's {" in err
