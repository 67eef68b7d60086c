"""An encoder wrapper that encodes each unique text once per run (memory) and once per
machine (the on-disk embedding cache)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from benchmark.core.types import Encoder
from benchmark.engine.embedding_cache import TEXT, TOKENS, EmbeddingCache, text_key, tokens_key


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
