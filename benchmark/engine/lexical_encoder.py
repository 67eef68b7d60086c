"""A lexical encoder with no model: hashed word and bigram counts, a floor for what word
overlap alone achieves."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np


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
