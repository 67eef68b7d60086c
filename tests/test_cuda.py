"""The CUDA path: device placement, fp16 autocast, synchronised timing and CUDA peak memory.

These tests need a GPU and are skipped only where torch sees none.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.core.types import EncoderOptions, EpisodeSpec
from benchmark.engine.encoders import build_encoder
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import run_sweep

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_encoder_on_cuda_matches_cpu():
    texts = ["book a table for two", "what is my balance", "play some jazz"] * 5
    cpu = build_encoder("all-MiniLM-L6-v2", EncoderOptions("cpu")).encode(texts)
    gpu = build_encoder("all-MiniLM-L6-v2", EncoderOptions("cuda")).encode(texts)
    assert gpu.dtype == np.float32
    assert (cpu * gpu).sum(1).min() > 0.999  # fp16 autocast, unit vectors


def test_sweep_on_cuda_records_cuda_memory_and_matches_cpu(tmp_path):
    sweep = Sweep(
        ("clinc150",), ("protonet", "logistic-regression"), (EpisodeSpec(5, 5, 15),), 50, (0,)
    )
    gpu = run_sweep(sweep, RunOptions(out=tmp_path / "gpu", device="cuda", progress=False))
    cpu = run_sweep(sweep, RunOptions(out=tmp_path / "cpu", device="cpu", progress=False))
    for on_gpu, on_cpu in zip(gpu.records, cpu.records, strict=True):
        assert on_gpu["status"] == "ok" and on_gpu["device"] == "cuda"
        assert on_gpu["peak_memory_mb"] > 0
        assert on_gpu["episodes_fingerprint"] == on_cpu["episodes_fingerprint"]
        assert abs(on_gpu["mean"] - on_cpu["mean"]) < 0.01


TRAINABLE = ("protonet-meta", "matching-net", "relation-net", "siamese-net", "maml", "fomaml",
             "reptile", "anil", "meta-sgd")  # fmt: skip


@pytest.mark.parametrize(
    ("methods", "options"),
    [
        (TRAINABLE, {"meta_episodes": "8", "valid_every": "4", "valid_episodes": "4"}),
        (TRAINABLE, {"meta_episodes": "4", "unfreeze_layers": "1", "valid_every": "0"}),
        (("finetune-full", "setfit"), {"unfreeze_layers": "1", "steps": "3"}),
    ],
)
def test_training_methods_run_on_cuda_and_agree_with_cpu(tmp_path, methods, options):
    sweep = Sweep(("clinc150",), methods, (EpisodeSpec(5, 1, 5),), 10, (0,), options=options)
    gpu = run_sweep(sweep, RunOptions(out=tmp_path / "gpu", device="cuda", progress=False))
    cpu = run_sweep(sweep, RunOptions(out=tmp_path / "cpu", device="cpu", progress=False))
    assert gpu.failed == 0, [r["error"] for r in gpu.records if r["status"] != "ok"]
    for on_gpu, on_cpu in zip(gpu.records, cpu.records, strict=True):
        assert on_gpu["device"] == "cuda" and on_gpu["peak_memory_mb"] > 0
        assert on_gpu["episodes_fingerprint"] == on_cpu["episodes_fingerprint"]
        assert abs(on_gpu["mean"] - on_cpu["mean"]) <= 0.1  # fp16 autocast, few episodes


def test_language_model_methods_run_on_cuda(tmp_path):
    """icl (packed scores checked against full passes inside the cell, bf16) and
    prompt-finetune on CUDA, with the model and every tensor on the device."""
    from tiny_lms import tiny_causal_lm, tiny_masked_lm

    from baselines.prompting import readable
    from benchmark.core.registry import TASKS

    labels = TASKS.get("clinc150").load(None, 1).split("test").labels()
    corpus = ["Input: Label: N/A", "book a table", "It was", *map(readable, labels)]
    models = {
        "icl": tiny_causal_lm(tmp_path / "gpt", corpus),
        "prompt-finetune": tiny_masked_lm(tmp_path / "bert", corpus),
    }
    for method, folder in models.items():
        sweep = Sweep(("clinc150",), (method,), (EpisodeSpec(3, 1, 2),), 2, (0,),
                      options={"lm": str(folder)})  # fmt: skip
        (record,) = run_sweep(
            sweep, RunOptions(out=tmp_path / method, device="cuda", progress=False)
        ).records
        assert record["status"] == "ok", record["error"]
        assert record["device"] == "cuda" and record["peak_memory_mb"] > 0
