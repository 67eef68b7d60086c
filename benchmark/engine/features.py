"""Trainable text features for meta-learning: an adapter over frozen (cached) embeddings, or the
encoder itself with its top layers unfrozen (`benchmark.engine.tuned_encoder`), then the adapter.

`embedded_once(texts)` runs the encoder once over a meta batch's texts (or the validation
episodes' texts) and serves every lookup inside it from that pass; `freeze(context)` turns
trained features into the adapter over an encoder's (cached) embeddings, for evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import MethodContext
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.transformer_encoder import TransformerEncoder
from benchmark.engine.tuned_encoder import Layers, TrainableTransformer, TunedEncoder


class ResidualAdapter(nn.Module):
    """`x + W2 relu(W1 x)`, with W2 zero-initialised: the identity until it is trained."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.down = nn.Linear(dim, hidden)
        self.up = nn.Linear(hidden, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.parts(x, self.down, self.up)[-1]

    @staticmethod
    def parts(
        x: torch.Tensor,
        down: Callable[[torch.Tensor], torch.Tensor],
        up: Callable[[torch.Tensor], torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The down layer's output, the hidden activations and the output `x + up(relu(down(x)))`
        for any `down` and `up` maps (MAML's low-rank form reuses this with adapted layers)."""
        pre = down(x)
        hidden = torch.relu(pre)
        return pre, hidden, x + up(hidden)


class TextFeatures(nn.Module):
    """texts -> trainable features: frozen embeddings (cached) or a partly unfrozen encoder,
    followed by a residual adapter (`adapter_hidden` 0: none)."""

    def __init__(
        self,
        context: MethodContext,
        unfreeze_layers: Layers,
        adapter_hidden: int,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.context = context
        encoder = context.encoder
        if encoder is None:
            raise BenchmarkError("this method needs an encoder")
        self.transformer: TrainableTransformer | None = None
        if unfreeze_layers != 0:
            self.transformer = TrainableTransformer(
                transformer_of(context, f"unfreeze_layers={unfreeze_layers}"),
                unfreeze_layers,
                gradient_checkpointing,
            )
        self.adapter = (
            ResidualAdapter(encoder.dim, adapter_hidden) if adapter_hidden > 0 else nn.Identity()
        )
        self.dim = encoder.dim
        self._table: tuple[dict[str, int], torch.Tensor] | None = None
        self.to(context.device)

    def base(self, texts: Sequence[str]) -> torch.Tensor:
        """What the adapter reads: the (unfrozen) encoder's embeddings of `texts`."""
        if self._table is not None:
            rows, table = self._table
            if all(t in rows for t in texts):
                index = torch.tensor([rows[t] for t in texts], device=table.device)
                return table.index_select(0, index)
        if self.transformer is not None:
            return self.transformer(texts)
        return self.context.embed(texts)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return self.adapter(self.base(texts))

    @contextlib.contextmanager
    def embedded_once(self, texts: Sequence[str]) -> Iterator[None]:
        """Inside: the encoder's embeddings of `texts` come from one pass over their unique
        texts (differentiable when grad is on), however often they are looked up."""
        unique = list(dict.fromkeys(texts))
        self._table = None
        self._table = ({t: i for i, t in enumerate(unique)}, self.base(unique))
        try:
            yield
        finally:
            self._table = None

    def freeze(self, context: MethodContext) -> None:
        """From now on read the (trained) embeddings of `context.encoder`: the transformer is
        dropped, the adapter stays."""
        self.transformer = None
        self.context = context

    def tuned_encoder(self, name: str, revision: str) -> TunedEncoder | None:
        """The trained transformer as a frozen encoder (None when only the adapter trained)."""
        if self.transformer is None:
            return None
        return TunedEncoder(self.transformer, name, revision)


def transformer_of(context: MethodContext, what: str) -> TransformerEncoder:
    """The context's Hugging Face encoder, or a BenchmarkError naming the encoder."""
    encoder = context.encoder
    inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
    if not isinstance(inner, TransformerEncoder):
        name = getattr(encoder, "name", None)
        raise BenchmarkError(
            f"{what} fine-tunes the encoder and needs a transformer encoder, not {name!r}; use "
            "all-MiniLM-L6-v2 or another Hugging Face model"
        )
    return inner
