"""Sequence packing for encoder training: rows hold every text once within their capacity, and
packed embeddings and their gradients equal padded micro-batches."""

from __future__ import annotations

import random

import pytest
import torch

from benchmark.core.types import EncoderOptions
from benchmark.engine.packing import first_fit, packed_batch
from benchmark.engine.transformer_encoder import TransformerEncoder
from benchmark.engine.tuned_encoder import TrainableTransformer

TEXTS = [
    "book a table for two at eight tonight please",
    "what is my balance",
    "play jazz",
    "how do i say thank you in french and in german",
    "set an alarm",
    "what is my balance",  # a repeat: encoded once, returned twice
    "is it going to rain tomorrow in the morning or only later in the afternoon",
]


def test_first_fit_places_every_text_once_within_capacity() -> None:
    rng = random.Random(0)
    lengths = [rng.randint(1, 40) for _ in range(200)] + [300]
    rows = first_fit(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows if len(row) > 1)
    assert [200] in rows  # longer than a row: alone
    assert len(rows) <= sum(lengths[:200]) // 64 + 3  # nearly full rows


def test_packed_rows_see_only_their_own_text() -> None:
    batch = packed_batch([[5, 6], [7], [8, 9, 10]], [[2, 0], [1]], pad_id=0)
    assert batch.input_ids.tolist() == [[8, 9, 10, 5, 6], [7, 0, 0, 0, 0]]
    assert batch.position_ids.tolist() == [[0, 1, 2, 0, 1], [0, 0, 0, 0, 0]]
    assert batch.segment.tolist() == [[2, 2, 2, 0, 0], [1, -1, -1, -1, -1]]
    sees = batch.attention_mask[0, 0] == 0
    assert sees[3].tolist() == [False, False, False, True, True]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_packed_embeddings_and_gradients_equal_padded_ones(tiny_bert, pooling) -> None:
    source = TransformerEncoder(tiny_bert, EncoderOptions("cpu"))
    model = TrainableTransformer(source, "all").eval()
    model.pooling = pooling
    results = []
    for pack in (True, False):
        model.pack = pack
        model.zero_grad()
        embedded = model(TEXTS)
        (embedded * torch.linspace(-1, 1, embedded.numel()).view_as(embedded)).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((embedded.detach(), grads))
    (packed, packed_grads), (padded, padded_grads) = results
    assert torch.allclose(packed, padded, atol=1e-5)
    assert torch.equal(packed[1], packed[5])
    assert len(packed_grads) == len(padded_grads) > 0
    assert all(
        torch.allclose(a, b, atol=1e-5) for a, b in zip(packed_grads, padded_grads, strict=True)
    )
