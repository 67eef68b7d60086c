"""A persistent embedding cache: float32 vectors keyed by (encoder, revision, kind, sha256 of the
text or token tuple), in one SQLite database per cache folder.

SQLite in WAL mode with a busy timeout, `INSERT OR IGNORE` and one transaction per batch makes
the cache safe when several processes read and write it at once: a text that two runs encode
together is stored once, and readers never see half a batch. The database must live on a local
file system (WAL does not work over NFS).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.core.errors import BenchmarkError

CACHE_ENV = "FEWSHOT_BENCH_CACHE"
DB_NAME = "embeddings.sqlite3"
CACHE_SCHEMA = 1
TEXT, TOKENS = "text", "tokens"
_BATCH = 500  # keys per SELECT (SQLite limits bound parameters)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    encoder TEXT NOT NULL,
    revision TEXT NOT NULL,
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    rows INTEGER NOT NULL,
    dim INTEGER NOT NULL,
    dtype TEXT NOT NULL,
    data BLOB NOT NULL,
    UNIQUE (encoder, revision, kind, key)
);
INSERT OR IGNORE INTO meta VALUES ('schema', '{CACHE_SCHEMA}');
"""


class EmbeddingCacheError(BenchmarkError):
    """The cache database cannot be used (corrupt, locked, or written by another version)."""


def cache_dir(flag: str | Path | None = None) -> Path:
    """`--cache-dir`, else `$FEWSHOT_BENCH_CACHE`, else `~/.cache/fewshot-bench`."""
    chosen = flag or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "fewshot-bench"
    return Path(chosen).expanduser()


def text_key(text: str) -> bytes:
    """sha256 of a text."""
    return hashlib.sha256(text.encode("utf-8")).digest()


def tokens_key(tokens: Sequence[str]) -> bytes:
    """sha256 of a token tuple (JSON, so that `("a b",)` and `("a", "b")` differ)."""
    return hashlib.sha256(json.dumps(list(tokens), ensure_ascii=False).encode("utf-8")).digest()


@dataclass(frozen=True)
class CacheGroup:
    """What the cache holds for one encoder revision and kind of vector."""

    encoder: str
    revision: str
    kind: str
    dim: int
    entries: int
    vector_bytes: int


class EmbeddingCache:
    """The vectors of one cache folder; connects on first use, once per process."""

    def __init__(self, directory: Path, timeout_s: float = 120.0) -> None:
        self.directory = directory
        self.path = directory / DB_NAME
        self.timeout_s = timeout_s
        self._connection: sqlite3.Connection | None = None
        self._pid = -1

    def get(
        self, encoder: str, revision: str, kind: str, keys: Sequence[bytes], dim: int
    ) -> dict[bytes, np.ndarray]:
        """The stored vectors among `keys`: (dim,) for texts, (words, dim) for token tuples."""
        found: dict[bytes, np.ndarray] = {}
        with self._guard() as db:
            for start in range(0, len(keys), _BATCH):
                chunk = keys[start : start + _BATCH]
                rows = db.execute(
                    "SELECT key, rows, dim, dtype, data FROM vectors WHERE encoder = ? AND "
                    f"revision = ? AND kind = ? AND key IN ({','.join('?' * len(chunk))})",
                    (encoder, revision, kind, *chunk),
                )
                for key, n, stored_dim, dtype, data in rows:
                    if stored_dim != dim or dtype != "float32":
                        raise EmbeddingCacheError(
                            f"embedding cache {self.path} holds {stored_dim}-d {dtype} vectors "
                            f"for {encoder} {revision}, but the encoder gives {dim}-d float32; "
                            f"run `fewshot-bench cache clear --encoder {encoder}`"
                        )
                    vector = np.frombuffer(data, dtype="<f4").reshape(n, dim).copy()
                    found[key] = vector[0] if kind == TEXT else vector
        return found

    def put(
        self, encoder: str, revision: str, kind: str, items: Sequence[tuple[bytes, np.ndarray]]
    ) -> None:
        """Store vectors in one transaction; keys already stored (by any process) are kept."""
        rows = []
        for key, vector in items:
            matrix = np.atleast_2d(np.asarray(vector, dtype="<f4"))
            rows.append((encoder, revision, kind, key, *matrix.shape, "float32", matrix.tobytes()))
        with self._guard() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("INSERT OR IGNORE INTO vectors VALUES (?,?,?,?,?,?,?,?)", rows)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def groups(self) -> list[CacheGroup]:
        """Entries and vector bytes per encoder, revision and kind (none if there is no cache)."""
        if not self.path.is_file():
            return []
        with self._guard() as db:
            rows = db.execute(
                "SELECT encoder, revision, kind, dim, COUNT(*), SUM(LENGTH(data)) FROM vectors "
                "GROUP BY encoder, revision, kind, dim ORDER BY encoder, revision, kind"
            ).fetchall()
        return [CacheGroup(*row) for row in rows]

    def size_bytes(self) -> int:
        """Bytes on disk of the database and its write-ahead log."""
        files = (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
        return sum(f.stat().st_size for f in files if f.is_file())

    def clear(self, encoder: str | None = None) -> int:
        """Delete one encoder's vectors (returns how many), or with no encoder the whole database
        (returns the bytes freed; works on a corrupt database too)."""
        if encoder is None:
            self.close()
            freed = self.size_bytes()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return freed
        if not self.path.is_file():
            return 0
        with self._guard() as db:
            deleted = db.execute("DELETE FROM vectors WHERE encoder = ?", (encoder,)).rowcount
            db.execute("VACUUM")
        return deleted

    def close(self) -> None:
        """Close this process's connection (the next use reconnects)."""
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """This process's connection; SQLite errors become one clear EmbeddingCacheError."""
        try:
            yield self._connect()
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise EmbeddingCacheError(
                    f"embedding cache {self.path} stayed locked by another process for "
                    f"{self.timeout_s:.0f} s ({error}); retry, or pass --no-cache"
                ) from error
            raise self._unreadable(error) from error
        except sqlite3.DatabaseError as error:
            raise self._unreadable(error) from error

    def _unreadable(self, error: Exception) -> EmbeddingCacheError:
        return EmbeddingCacheError(
            f"embedding cache {self.path} is unreadable ({error}); it may be corrupt: delete it "
            f"with `fewshot-bench cache clear --cache-dir {self.directory}`, or pass --no-cache"
        )

    def _connect(self) -> sqlite3.Connection:
        if self._connection is not None and self._pid == os.getpid():
            return self._connection
        self.directory.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(f"BEGIN IMMEDIATE; {_SCHEMA} COMMIT;")
            (schema,) = db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
        except BaseException:
            db.close()
            raise
        if schema != str(CACHE_SCHEMA):
            db.close()
            raise EmbeddingCacheError(
                f"embedding cache {self.path} has schema {schema}, this fewshot-bench reads "
                f"{CACHE_SCHEMA}; run `fewshot-bench cache clear --cache-dir {self.directory}`"
            )
        self._connection, self._pid = db, os.getpid()
        return db
