"""Sequence packing for a BERT-like encoder: several texts share one row, each attending only to
itself (a block-diagonal additive mask), with positions restarting at every text, so a batch
costs its real tokens and almost no padding. Outputs equal separate forward passes up to float
rounding (the mask is additive, as in the model's own padding)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

PACK_TOKENS = 64  # tokens per packed row: attention grows with the square of it


def first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Rows of indices into `lengths`, longest first, each into the first row it fits (a text
    longer than `capacity` gets a row of its own)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, left in enumerate(room):
            if lengths[i] <= left:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


@dataclass(frozen=True)
class PackedBatch:
    """Model inputs for packed rows, and where each text's tokens landed."""

    input_ids: torch.Tensor  # (rows, width)
    position_ids: torch.Tensor  # (rows, width)
    attention_mask: torch.Tensor  # (rows, 1, width, width), 0 or the dtype's minimum
    segment: torch.Tensor  # (rows, width): the text index of each token, -1 for padding


def packed_batch(
    ids: Sequence[Sequence[int]], rows: Sequence[Sequence[int]], pad_id: int
) -> PackedBatch:
    """Lay the texts `ids[i]` of each row side by side, padded to the longest row."""
    width = max(sum(len(ids[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    segment = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for i in row:
            n = len(ids[i])
            input_ids[r, at : at + n] = torch.tensor(ids[i], dtype=torch.long)
            positions[r, at : at + n] = torch.arange(n)
            segment[r, at : at + n] = i
            at += n
    same = (segment.unsqueeze(2) == segment.unsqueeze(1)) & (segment.unsqueeze(1) >= 0)
    mask = torch.zeros(same.shape).masked_fill(~same, torch.finfo(torch.float32).min)
    return PackedBatch(input_ids, positions, mask.unsqueeze(1), segment)


def segment_pool(
    hidden: torch.Tensor, segment: torch.Tensor, count: int, cls: bool
) -> torch.Tensor:
    """(count, dim): each text's mean token state (or its first token's, `cls`) from packed
    `hidden` (rows, width, dim)."""
    flat, seg = hidden.reshape(-1, hidden.shape[-1]), segment.reshape(-1)
    real = seg >= 0
    if cls:
        first = torch.ones_like(seg, dtype=torch.bool)
        first[1:] = seg[1:] != seg[:-1]
        chosen = real & first
        out = flat.new_zeros(count, flat.shape[1])
        return out.index_copy(0, seg[chosen], flat[chosen])
    sums = flat.new_zeros(count, flat.shape[1]).index_add(0, seg[real], flat[real])
    counts = torch.bincount(seg[real], minlength=count).clamp(min=1).unsqueeze(1)
    return sums / counts.to(sums.dtype)
