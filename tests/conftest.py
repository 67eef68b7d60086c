"""Shared fixtures: the shared data directory (required in CI) and an isolated embedding cache."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark.engine.embedding_cache import CACHE_ENV

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FEWSHOT_BENCH_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session", autouse=True)
def isolated_embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One embedding cache for the whole session, never ~/.cache: later tests reuse encodings."""
    folder = tmp_path_factory.mktemp("embedding-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(folder))
        yield folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`$FEWSHOT_BENCH_DATA` or `../shared/data`; skipped when absent, except in CI."""
    if (SHARED_DATA / "clinc150").is_dir():
        return SHARED_DATA
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the shared data is missing at {SHARED_DATA}")
    pytest.skip(f"shared data not found at {SHARED_DATA}")
