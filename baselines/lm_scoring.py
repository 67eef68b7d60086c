"""Log-likelihoods of label verbalizers after a shared prompt prefix, with a causal LM.

`cached_log_likelihoods` runs the prefix (instruction and demonstrations) once and keeps its
key/value cache. Queries then go through `max_batch` at a time, packed into one sequence after
the prefix: each query, followed by every distinct leading part of the multi-token
verbalizers, sees the prefix and itself only (a block-causal attention mask; positions restart
after the prefix for each query). Every label's first token is read off the query's last
position, so all labels share that step, and labels with the same leading tokens share the
rest. The cache is cut back to the prefix after each pass, so the prefix is neither recomputed
nor copied per query. `naive_log_likelihoods` is the reference: one full forward pass per
(query, label). Both return the summed log-probability of each label's tokens.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class PromptTokens:
    """One episode's prompt as token ids: the shared prefix, each query's part, each label's
    verbalizer (the continuation to score)."""

    prefix: list[int]
    queries: list[list[int]]
    verbalizers: list[list[int]]


def precision(device: torch.device) -> contextlib.AbstractContextManager[None]:
    """bf16 autocast on CUDA, nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _cache_argument(model: Any) -> str:
    """The keyword a model's forward takes its key/value cache by (renamed in transformers 5)."""
    names = inspect.signature(model.forward).parameters
    return "cache" if "cache" in names else "past_key_values"


def _keeps_logits(model: Any) -> bool:
    """Whether the model can return the logits of chosen positions only (`logits_to_keep`)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _cache_of(output: Any) -> Any:
    return output["cache"] if "cache" in output else output["past_key_values"]


def _batches(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


@dataclass(frozen=True)
class Pack:
    """Several queries, each followed by every distinct leading part of the multi-token
    verbalizers, laid out in one sequence after the prefix: `allowed[i, k]` says whether new
    token i sees new token k (each block sees the prefix and itself, causally), `last[j]` is the
    column of query j's last token and `rest_at[j][u]` where leading part u starts."""

    ids: list[int]
    positions: list[int]
    allowed: torch.Tensor
    last: list[int]
    rest_at: list[list[int]]
    reads: list[int]  # every column whose next-token distribution is read, in order


def pack(queries: Sequence[Sequence[int]], rests: Sequence[Sequence[int]], start: int) -> Pack:
    """Lay out `queries` and, after each, every `rests` part (positions count from `start`)."""
    ids: list[int] = []
    positions: list[int] = []
    blocks: list[tuple[int, int]] = []  # (first column, length) of each causal run
    sees: list[tuple[int, int]] = []  # the query run a rest run also sees
    last, rest_at, reads = [], [], []
    for query in queries:
        base = len(ids)
        ids += query
        positions += range(start, start + len(query))
        blocks.append((base, len(query)))
        sees.append((base, 0))
        last.append(base + len(query) - 1)
        reads.append(base + len(query) - 1)
        at = []
        for rest in rests:
            at.append(len(ids))
            reads += range(len(ids), len(ids) + len(rest))
            blocks.append((len(ids), len(rest)))
            sees.append((base, len(query)))
            ids += rest
            positions += range(start + len(query), start + len(query) + len(rest))
        rest_at.append(at)
    allowed = torch.zeros(len(ids), len(ids), dtype=torch.bool)
    for (first, length), (seen, seen_length) in zip(blocks, sees, strict=True):
        rows = slice(first, first + length)
        allowed[rows, seen : seen + seen_length] = True
        allowed[rows, first : first + length] = torch.ones(length, length, dtype=torch.bool).tril()
    return Pack(ids, positions, allowed, last, rest_at, reads)


@torch.no_grad()
def cached_log_likelihoods(model: Any, prompt: PromptTokens, max_batch: int = 16) -> torch.Tensor:
    """(queries, labels) summed log-probabilities of each label's tokens after prefix + query.

    The prefix runs once; then up to `max_batch` queries at a time go through one forward pass
    as one packed sequence (`pack`) against its cache, which is cut back to the prefix after
    each pass, so the prefix's keys and values are never copied per query.
    """
    device = next(model.parameters()).device
    prefix = torch.tensor([prompt.prefix], dtype=torch.long, device=device)
    with precision(device):
        cache = _cache_of(model(input_ids=prefix, use_cache=True))
    width = len(prompt.prefix)
    rests = sorted({tuple(v[:-1]) for v in prompt.verbalizers if len(v) > 1})
    rest_of = {r: i for i, r in enumerate(rests)}
    out = torch.zeros(len(prompt.queries), len(prompt.verbalizers))
    for batch in _batches(len(prompt.queries), max_batch):
        packed = pack([prompt.queries[j] for j in batch], rests, width)
        log_probs = _packed_log_probs(model, cache, packed, width)
        cache.crop(-len(packed.ids))  # back to the prefix alone
        column = {c: i for i, c in enumerate(packed.reads)}
        rows, tokens, pairs = [], [], []  # every (read row, token) and its (query, label) pair
        for row, j in enumerate(batch):
            for label, verbalizer in enumerate(prompt.verbalizers):
                cols = [packed.last[row]]
                if len(verbalizer) > 1:
                    at = packed.rest_at[row][rest_of[tuple(verbalizer[:-1])]]
                    cols += range(at, at + len(verbalizer) - 1)
                rows += [column[c] for c in cols]
                tokens += verbalizer
                pairs += [j * len(prompt.verbalizers) + label] * len(verbalizer)
        picked = log_probs[torch.tensor(rows), torch.tensor(tokens)].cpu()
        out.view(-1).index_add_(0, torch.tensor(pairs), picked)
    return out


def _packed_log_probs(model: Any, cache: Any, packed: Pack, width: int) -> torch.Tensor:
    """Log-probabilities (on the model's device) at the columns a pack reads, in `reads` order."""
    device = next(model.parameters()).device
    n = len(packed.ids)
    allowed = torch.cat([torch.ones(n, width, dtype=torch.bool), packed.allowed], 1)
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    keep = torch.tensor(packed.reads, device=device)
    kwargs: dict[str, Any] = {_cache_argument(model): cache}
    if _keeps_logits(model):
        kwargs["logits_to_keep"] = keep
    with precision(device):
        logits = model(
            input_ids=torch.tensor([packed.ids], device=device),
            attention_mask=mask[None, None].to(device),
            position_ids=torch.tensor([packed.positions], device=device),
            use_cache=True,
            **kwargs,
        ).logits[0]
    if not _keeps_logits(model):
        logits = logits[keep]
    return logits.float().log_softmax(-1)


@torch.no_grad()
def naive_log_likelihoods(model: Any, prompt: PromptTokens) -> torch.Tensor:
    """The same as `cached_log_likelihoods`, by one full forward pass per (query, label)."""
    device = next(model.parameters()).device
    out = torch.zeros(len(prompt.queries), len(prompt.verbalizers))
    for j, query in enumerate(prompt.queries):
        context = prompt.prefix + query
        for label, tokens in enumerate(prompt.verbalizers):
            ids = torch.tensor([context + tokens], dtype=torch.long, device=device)
            with precision(device):
                logits = model(input_ids=ids).logits[0].float()
            log_probs = logits[len(context) - 1 : -1].log_softmax(-1)
            out[j, label] = log_probs[torch.arange(len(tokens)), torch.tensor(tokens)].sum().cpu()
    return out
