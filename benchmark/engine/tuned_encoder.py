"""A trainable copy of a Hugging Face encoder, and the trained copy as an `Encoder` again.

`TrainableTransformer` unfreezes the top `unfreeze_layers` transformer layers (`all`: every
weight, embeddings included). A batch of texts goes through it once: unique texts, packed into
shared rows (`benchmark.engine.packing`), so a meta batch of episodes costs one pass of its real
tokens however its episodes overlap; sentences for word vectors go in length-sorted
micro-batches padded to their own longest one. Word vectors (for tagging) are
the mean of each word's sub-word states in the last layer. On CUDA the forward pass runs under
bf16 autocast; gradient checkpointing trades compute for memory. `TunedEncoder` wraps the trained
copy as a frozen encoder for evaluation, so its embeddings can be cached like any encoder's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.engine.packing import PACK_TOKENS, first_fit, packed_batch, segment_pool
from benchmark.engine.transformer_encoder import TransformerEncoder, fitting_pieces

Layers = int | Literal["all"]
MICRO_BATCH = 32  # texts per padded micro-batch of the training forward
PACK_ROWS = 32  # packed rows per forward pass (64 x 32 was fastest on the perf row)


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-like model (`encoder.layer`)."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise BenchmarkError(
            f"cannot unfreeze layers of {type(model).__name__}: expected a BERT-like "
            "`encoder.layer` list"
        )
    return layers


def check_layers(unfreeze_layers: Layers, available: int) -> None:
    """Refuse an `unfreeze_layers` the encoder cannot serve, with both numbers."""
    if unfreeze_layers == "all":
        return
    if not 0 <= unfreeze_layers <= available:
        raise BenchmarkError(
            f"unfreeze_layers={unfreeze_layers}: the encoder has {available} layers (use 0 to "
            f"{available}, or all)"
        )


class TrainableTransformer(nn.Module):
    """A private copy of a Hugging Face encoder whose top `unfreeze_layers` layers train.

    Pooling and normalisation follow the frozen encoder it was copied from.
    """

    def __init__(
        self,
        source: TransformerEncoder,
        unfreeze_layers: Layers,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.tokenizer = source.tokenizer
        self.model = copy.deepcopy(source.model).train()
        # Fused (SDPA) attention kernels have no double backward; second-order MAML needs one.
        if hasattr(self.model, "set_attn_implementation"):
            self.model.set_attn_implementation("eager")
        self.pooling, self.normalize = source.pooling, source.normalize
        self.max_length = source.max_length
        layers = encoder_layers(self.model)
        check_layers(unfreeze_layers, len(layers))
        if unfreeze_layers == 0:
            raise BenchmarkError("unfreeze_layers=0 leaves nothing of the encoder to train")
        everything = unfreeze_layers == "all"
        for parameter in self.model.parameters():
            parameter.requires_grad_(everything)
        if not everything:
            for layer in layers[len(layers) - int(unfreeze_layers) :]:
                for parameter in layer.parameters():
                    parameter.requires_grad_(True)
        if gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.pack = True  # texts packed into shared rows; False: padded micro-batches

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _hidden(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Last-layer states (in the model's precision, float32 after bf16 autocast) and the
        attention mask of one padded micro-batch."""
        batch = self.tokenizer.pad({"input_ids": ids}, return_tensors="pt").to(self.device)
        cuda = self.device.type == "cuda"
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
            hidden = self.model(**batch).last_hidden_state
        if hidden.dtype in (torch.float16, torch.bfloat16):
            hidden = hidden.float()
        return hidden, batch["attention_mask"]

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """(len(texts), dim) embeddings; each unique text is encoded once, packed with others
        into rows of about `PACK_TOKENS` tokens (`self.pack`), else in length-sorted
        micro-batches padded to their own longest text."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return torch.zeros(0, self.dim, device=self.device)
        ids = self.tokenizer(unique, truncation=True, max_length=self.max_length)["input_ids"]
        embedded = self._packed(ids) if self.pack else self._padded(ids)
        position = {text: i for i, text in enumerate(unique)}
        wanted = torch.tensor([position[t] for t in texts], device=self.device)
        return embedded.index_select(0, wanted)

    def _padded(self, ids: list[list[int]]) -> torch.Tensor:
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        parts = []
        for start in range(0, len(order), MICRO_BATCH):
            chosen = order[start : start + MICRO_BATCH]
            parts.append(self._pool(*self._hidden([ids[i] for i in chosen])))
        rows = torch.empty(len(ids), dtype=torch.long)
        rows[torch.tensor(order)] = torch.arange(len(ids))
        return torch.cat(parts).index_select(0, rows.to(self.device))

    def _packed(self, ids: list[list[int]]) -> torch.Tensor:
        rows = first_fit([len(i) for i in ids], PACK_TOKENS)
        parts = []
        for start in range(0, len(rows), PACK_ROWS):
            batch = packed_batch(ids, rows[start : start + PACK_ROWS], self.tokenizer.pad_token_id)
            cuda = self.device.type == "cuda"
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=cuda):
                hidden = self.model(
                    input_ids=batch.input_ids.to(self.device),
                    attention_mask=batch.attention_mask.to(self.device),
                    position_ids=batch.position_ids.to(self.device),
                    token_type_ids=torch.zeros_like(batch.input_ids).to(self.device),
                ).last_hidden_state
            if hidden.dtype in (torch.float16, torch.bfloat16):
                hidden = hidden.float()
            parts.append((hidden, batch.segment.to(self.device)))
        pooled = sum(
            segment_pool(hidden, segment, len(ids), self.pooling == "cls")
            for hidden, segment in parts
        )
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def word_vectors(self, sentences: Sequence[Sequence[str]]) -> list[torch.Tensor]:
        """Per sentence, a (words, dim) tensor: each word's mean sub-word state in the last layer
        (differentiable); sentences too long for the model are cut into pieces that fit."""
        pieces = fitting_pieces(self.tokenizer, sentences, self.max_length)
        encoded = self.tokenizer(
            [words for _, _, words in pieces],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
        )
        order = sorted(range(len(pieces)), key=lambda i: -len(encoded["input_ids"][i]))
        vectors: list[torch.Tensor | None] = [None] * len(pieces)
        for start in range(0, len(order), MICRO_BATCH):
            chosen = order[start : start + MICRO_BATCH]
            hidden, _ = self._hidden([encoded["input_ids"][i] for i in chosen])
            for row, i in enumerate(chosen):
                words = len(pieces[i][2])
                vectors[i] = word_means(hidden[row], encoded.word_ids(i), words)
        out: list[list[torch.Tensor]] = [[] for _ in sentences]
        for (sentence, _, _), vector in sorted(
            zip(pieces, vectors, strict=True), key=lambda p: (p[0][0], p[0][1])
        ):
            out[sentence].append(vector)  # type: ignore[arg-type]
        return [
            torch.cat(parts) if parts else torch.zeros(0, self.dim, device=self.device)
            for parts in out
        ]


def word_means(hidden: torch.Tensor, word_ids: Sequence[int | None], words: int) -> torch.Tensor:
    """(words, dim) means of the sub-word rows of `hidden` that belong to each word."""
    index = torch.tensor([-1 if w is None else w for w in word_ids], device=hidden.device)
    keep = index >= 0
    sums = hidden.new_zeros(words, hidden.shape[1]).index_add(
        0, index[keep], hidden[: len(word_ids)][keep]
    )
    counts = torch.bincount(index[keep], minlength=words).clamp(min=1).unsqueeze(1)
    return sums / counts


class TunedEncoder:
    """A trained `TrainableTransformer` as a frozen `Encoder` (inference mode): sentence
    embeddings pooled as its source's, word vectors from the last layer. `name` and `revision`
    say which training produced it (the embedding cache keys on them)."""

    def __init__(self, transformer: TrainableTransformer, name: str, revision: str) -> None:
        self.transformer = transformer
        self.name = name
        self.revision = revision
        self.dim = transformer.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.transformer.eval()
        with torch.inference_mode():
            out = self.transformer(list(texts))
        return out.cpu().numpy().astype(np.float32, copy=False)

    def encode_tokens(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        self.transformer.eval()
        with torch.inference_mode():
            vectors = self.transformer.word_vectors(sentences)
        return [v.cpu().numpy().astype(np.float32, copy=False) for v in vectors]
