"""A Hugging Face transformer as a sentence and word-vector encoder: length-sorted,
dynamically padded batches, mean or CLS pooling as its sentence-transformers folder says."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.core.types import EncoderOptions
from benchmark.engine.devices import resolve_device

# Bump whenever our code that turns model outputs into vectors changes (tokenisation options,
# pooling, normalisation, the layer and averaging of token vectors): the embedding cache keys on
# it, so vectors made by older code are never read back.
VECTOR_CODE_VERSION = 1


if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


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
        self.revision = revision or folder_revision(Path(model))
        # fp16 autocast on CUDA gives other vectors than fp32 on the CPU: never mix them.
        precision = "+fp16" if self.device.startswith("cuda") else ""
        self.cache_revision = (
            f"{self.revision}+code{VECTOR_CODE_VERSION}+max{max_length}{precision}"
        )
        hidden_size, layers = _model_shape(self.source)
        self.dim = hidden_size
        self.layers = layers
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
        pieces = fitting_pieces(self.tokenizer, sentences, self.max_length)
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


def fitting_pieces(
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


def folder_revision(model_dir: Path) -> str:
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
