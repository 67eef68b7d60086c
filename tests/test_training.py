"""Meta-training mechanics: typed options, the training loop, checkpoints, train/run, plug-ins."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import torch

from benchmark.cli import main
from benchmark.core.configs import ConfigError, parse_options, with_options
from benchmark.core.pools import ClassPool
from benchmark.core.types import EpisodeSpec, Example
from benchmark.engine.checkpoints import load_checkpoint
from benchmark.engine.planning import configured_methods
from benchmark.engine.training import MetaTrainConfig, TrainingDiverged, meta_train

# A fast, real meta-training budget on the vendored CLINC150 with the lexical encoder.
TINY = [
    "--task", "clinc150", "--method", "protonet-meta", "--encoder", "hashing-bow",
    "--n-way", "5", "--k-shot", "1", "--n-query", "5", "--episodes", "10", "--seeds", "1",
    "--no-progress", "--quiet",
    "--option", "meta_episodes=8", "--option", "meta_batch=2", "--option", "valid_every=2",
    "--option", "valid_episodes=4", "--option", "adapter_hidden=16",
]  # fmt: skip


def records_of(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@dataclass(frozen=True)
class Example3:
    steps: int = 3
    rate: float = 0.5
    flag: bool = False
    mode: Literal["a", "b"] = "a"


def test_options_are_typed_and_checked():
    config = with_options(Example3(), parse_options(["steps=7", "rate=1e-3", "flag=true"]), "m")
    assert config == Example3(7, 1e-3, True, "a")
    with pytest.raises(ConfigError, match=r"option steps='x': expected int"):
        with_options(Example3(), {"steps": "x"}, "m")
    with pytest.raises(ConfigError, match=r"mode='c': expected one of 'a', 'b'"):
        with_options(Example3(), {"mode": "c"}, "m")
    with pytest.raises(ConfigError, match=r"has no option stepz; its options: steps \(int\)"):
        with_options(Example3(), {"stepz": "1"}, "m")
    with pytest.raises(ConfigError, match="expected --option NAME=VALUE"):
        parse_options(["steps"])
    scoped = parse_options(["finetune-full.inner-lr=1", "pkg.mod:Cls.x=2"])
    assert scoped == {"finetune-full.inner_lr": "1", "pkg.mod:Cls.x": "2"}


def test_a_method_scoped_option_wins_over_a_shared_one_in_either_order():
    for order in (
        ["maml.meta_episodes=7", "meta_episodes=9"],
        ["meta_episodes=9", "maml.meta_episodes=7"],
    ):
        configured = configured_methods(("maml", "anil"), parse_options(order))
        assert configured["maml"].config.meta_episodes == 7
        assert configured["anil"].config.meta_episodes == 9


def test_cli_refuses_unknown_and_badly_typed_options(capsys):
    assert main(["run", *TINY[:4], "--option", "meta_lr=fast"]) == 2
    assert "meta_lr='fast': expected float" in capsys.readouterr().err
    assert main(["run", *TINY[:4], "--option", "inner_lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "no method being run takes option(s) inner_lr" in err and "meta_lr" in err


class FixedLossLearner:
    """A learner whose training loss is scripted (to test the loop, not a method)."""

    def __init__(self, losses):
        self.losses = iter(losses)
        self.weight = torch.zeros(1)

    def fit(self, support, rng):
        return self

    def predict(self, texts):
        return ["a"] * len(texts)

    def train_step(self, episodes, rng):
        self.weight += 1
        return next(self.losses)

    def checkpoint_state(self):
        return {"weight": self.weight}

    def load_checkpoint_state(self, state):
        self.weight = state["weight"].clone()


def two_class_pool() -> ClassPool:
    return ClassPool.of(
        [Example(f"{c}{i}", f"{c} text {i}", c) for c in ("a", "b") for i in range(6)]
    )


def test_a_non_finite_loss_stops_training_with_the_step():
    config = MetaTrainConfig(meta_episodes=4, meta_batch=1, valid_every=0)
    learner = FixedLossLearner([0.5, math.nan, 0.1, 0.1])
    with pytest.raises(TrainingDiverged, match="loss is nan at step 2 of 4"):
        meta_train(learner, config, EpisodeSpec(2, 1, 1), "classification", two_class_pool(), None)


class RecordingPool:
    """A pool that logs each episode it draws into `events`."""

    def __init__(self, events: list[str]) -> None:
        self.pool, self.events = two_class_pool(), events

    def labels(self):
        return self.pool.labels()

    def episode(self, spec, seed, index):
        self.events.append(f"sample {index}")
        return self.pool.episode(spec, seed, index)


class PendingLoss:
    """A loss the device is still computing: reading it is logged."""

    def __init__(self, step: int, events: list[str]) -> None:
        self.step, self.events = step, events

    def __float__(self) -> float:
        self.events.append(f"read loss {self.step}")
        return 0.5


def test_the_next_batch_is_sampled_before_the_loss_is_read():
    events: list[str] = []

    class Learner(FixedLossLearner):
        def train_step(self, episodes, rng):
            step = len([e for e in events if e.startswith("step")]) + 1
            events.append(f"step {step} on {[e.index for e in episodes]}")
            return PendingLoss(step, events)

    config = MetaTrainConfig(meta_episodes=6, meta_batch=2, valid_every=0)
    spec = EpisodeSpec(2, 1, 1)
    result = meta_train(Learner([]), config, spec, "classification", RecordingPool(events), None)
    assert events == [
        "sample 0", "sample 1", "step 1 on [0, 1]",
        "sample 2", "sample 3", "read loss 1", "step 2 on [2, 3]",
        "sample 4", "sample 5", "read loss 2", "step 3 on [4, 5]",
        "read loss 3",
    ]  # fmt: skip
    assert [h["loss"] for h in result.history] == [0.5] * 3


def test_the_last_meta_batch_holds_what_is_left_of_meta_episodes():
    seen: list[list[int]] = []

    class Learner(FixedLossLearner):
        def train_step(self, episodes, rng):
            seen.append([e.index for e in episodes])
            return 0.5

    config = MetaTrainConfig(meta_episodes=5, meta_batch=2, valid_every=0)
    meta_train(Learner([]), config, EpisodeSpec(2, 1, 1), "classification", two_class_pool(), None)
    assert seen == [[0, 1], [2, 3], [4]]


def test_meta_batch_and_episode_counts_are_checked():
    with pytest.raises(ConfigError, match=r"option meta_batch=0: expected at least 1"):
        with_options(MetaTrainConfig(), {"meta_batch": "0"}, "m")
    with pytest.raises(ConfigError, match=r"option meta_episodes=-1: expected at least 0"):
        with_options(MetaTrainConfig(), {"meta_episodes": "-1"}, "m")


def test_a_learner_with_nothing_to_meta_train_says_so(tmp_path):
    args = [*TINY, "--method", "maml", "--option", "adapter_hidden=0", "--out", str(tmp_path)]
    assert main(["run", *args]) == 1
    (record,) = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert "nothing to meta-train: with adapter_hidden=0 and unfreeze_layers=0" in record["error"]


def test_the_best_validation_state_is_kept():
    config = MetaTrainConfig(meta_episodes=4, meta_batch=1, valid_every=1, valid_episodes=2)
    learner = FixedLossLearner([1.0] * 4)
    scores = iter([0.2, 0.5, 0.9, 0.4, 0.1])  # step 0 (untrained), then steps 1-4

    import benchmark.engine.training as training

    original = training.validation_score
    training.validation_score = lambda *_: next(scores)
    try:
        result = meta_train(
            learner, config, EpisodeSpec(2, 1, 1), "classification", two_class_pool(),
            two_class_pool(),
        )  # fmt: skip
    finally:
        training.validation_score = original
    assert (result.best_step, result.best_valid) == (2, 0.9)
    assert float(learner.weight) == 2.0  # the state after step 2 was restored


def test_run_meta_trains_saves_and_then_reuses_the_checkpoint(tmp_path):
    checkpoints = tmp_path / "ckpt"
    common = [*TINY, "--checkpoint-dir", str(checkpoints)]
    assert main(["run", *common, "--out", str(tmp_path / "a")]) == 0
    (first,) = records_of(tmp_path / "a")
    assert first["status"] == "ok", first["error"]
    training = first["training"]
    assert training["reused"] is False and training["steps"] == 4
    assert training["train_spec"] == "5w-1s-5q" and 0 <= training["best_step"] <= 4
    assert first["method_config"]["meta_episodes"] == 8
    (saved,) = checkpoints.glob("*.pt")
    payload = load_checkpoint(saved)
    assert (
        payload["identity"]["task"] == "clinc150"
        and payload["identity"]["encoder"] == "hashing-bow"
    )
    assert [h["step"] for h in payload["history"] if "loss" in h] == [1, 2, 3, 4]

    assert main(["run", *common, "--out", str(tmp_path / "b")]) == 0
    (second,) = records_of(tmp_path / "b")
    assert second["training"]["reused"] is True
    assert second["per_episode"] == first["per_episode"]  # same episodes, same trained state


def test_train_command_then_run_with_that_checkpoint(tmp_path, capsys):
    checkpoints = tmp_path / "ckpt"
    assert main(["train", *TINY, "--checkpoint-dir", str(checkpoints)]) == 0
    printed = capsys.readouterr().out
    assert "protonet-meta" in printed and "trained" in printed
    (saved,) = checkpoints.glob("*.pt")
    out = tmp_path / "out"
    assert main(["run", *TINY, "--checkpoint", str(saved), "--out", str(out)]) == 0
    (record,) = records_of(out)
    assert record["training"]["reused"] is True
    assert record["training"]["checkpoint"] == str(saved)


def test_another_checkpoint_into_the_same_out_is_another_cell(tmp_path, capsys):
    """Evaluating another checkpoint file never reuses the record of the first one."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["train", *TINY, "--checkpoint-dir", str(first)]) == 0
    assert main(["train", *TINY, "--k-shot", "5", "--checkpoint-dir", str(second)]) == 0
    ((one,), (two,)) = first.glob("*.pt"), second.glob("*.pt")
    out = tmp_path / "out"
    for checkpoint in (one, two, one):
        assert main(["run", *TINY, "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    records = records_of(out)
    assert sorted(r["training"]["checkpoint"] for r in records) == sorted([str(one), str(two)])
    assert len({r["checkpoint"] for r in records}) == 2
    missing = tmp_path / "nothing.pt"
    assert main(["run", *TINY, "--checkpoint", str(missing), "--out", str(out)]) == 2
    assert f"no checkpoint at {missing}" in capsys.readouterr().err


def test_a_checkpoint_of_another_config_or_encoder_is_refused(tmp_path, capsys):
    checkpoints = tmp_path / "ckpt"
    assert main(["train", *TINY, "--checkpoint-dir", str(checkpoints)]) == 0
    (saved,) = checkpoints.glob("*.pt")
    out = tmp_path / "out"
    code = main(["run", *TINY, "--option", "distance=cosine", "--checkpoint", str(saved),
                 "--out", str(out)])  # fmt: skip
    assert code == 1
    assert "failed: clinc150 protonet-meta 5w-1s-5q: " in capsys.readouterr().err
    (record,) = records_of(out)
    assert record["status"] == "failed"
    assert (
        "does not fit this run: method_config: distance is 'euclidean' in the checkpoint, "
        "'cosine' in this run"
    ) in record["error"]
    assert "meta_lr" not in record["error"]  # only the options that differ


def test_a_checkpoint_for_methods_that_do_not_train_is_refused(tmp_path, capsys):
    args = ["run", "--task", "clinc150", "--method", "protonet", "--checkpoint", "x.pt",
            "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    assert "none of the methods being run (protonet) is trained" in capsys.readouterr().err


def test_train_refuses_methods_that_do_not_train(capsys):
    assert main(["train", "--task", "clinc150", "--method", "protonet", "--no-progress"]) == 2
    assert "have nothing to train; trainable methods: " in capsys.readouterr().err


def test_meta_training_needs_training_classes(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    rows = [{"text": f"{c} example {i}", "label": c} for c in "abcdef" for i in range(8)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    args = ["run", "--task-file", str(data), *TINY[2:], "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "has no train split" in capsys.readouterr().err
    assert main([*args, "--train-classes", "a,b,c"]) == 2  # 3 test classes < 5-way
    capsys.readouterr()
    assert main([*args, "--n-way", "2", "--train-classes", "a,b,c"]) == 0


def test_a_validation_split_too_small_is_refused_before_any_cell(tmp_path, capsys):
    data = tmp_path / "mine.jsonl"
    sizes = {"a": 20, "b": 20, "c": 20, "d": 20, "e": 20, "v": 4, "w": 20, "x": 8, "y": 8}
    rows = [{"text": f"{c} example {i}", "label": c} for c, n in sizes.items() for i in range(n)]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": list("abcde"), "valid": ["v", "w"], "test": ["x", "y"]}))
    args = ["run", "--task-file", str(data), "--split-file", str(split), *TINY[2:],
            "--n-way", "2", "--out", str(tmp_path / "o")]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "larger than some classes of split 'valid' of mine: 1 class(es)" in err
    assert "'protonet-meta' meta-trains on this split" in err and "valid_every=0" in err
    assert not (tmp_path / "o").exists()  # refused before any cell ran
    assert main([*args, "--option", "valid_every=0"]) == 0


def test_tensorboard_curves_are_written(tmp_path):
    log_dir = tmp_path / "tb"
    assert main(["run", *TINY, "--out", str(tmp_path / "o"), "--log-dir", str(log_dir)]) == 0
    events = list(log_dir.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_a_plugin_that_cannot_be_imported_is_named(capsys):
    assert main(["run", "--task", "clinc150", "--method", "nope_module:Thing"]) == 2
    assert "cannot load method 'nope_module:Thing'" in capsys.readouterr().err


def test_untrained_protonet_meta_equals_frozen_protonet(tmp_path):
    """The adapter starts as the identity: with meta_episodes=0 it is the frozen protonet."""
    out = tmp_path / "o"
    args = [*TINY, "--method", "protonet-meta,protonet", "--option", "meta_episodes=0"]
    assert main(["run", *args, "--out", str(out)]) == 0
    by_method = {r["method"]: r for r in records_of(out)}
    assert by_method["protonet-meta"]["per_episode"] == by_method["protonet"]["per_episode"]
    assert by_method["protonet-meta"]["training"]["steps"] == 0


def test_seeded_training_is_reproducible(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert main(["run", *TINY, "--out", str(out), "--checkpoint-dir", str(out / "c")]) == 0
        (record,) = records_of(out)
        (saved,) = (out / "c").glob("*.pt")
        runs.append((record["per_episode"], load_checkpoint(saved)["state"]))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key
