"""Episode-level scores."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Fraction of positions where `predicted` equals `gold`."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("accuracy of an empty query set is undefined")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
