"""Trainable text features for meta-learning: an adapter over frozen (cached) embeddings, or the
encoder itself with its top layers unfrozen."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import nn

from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import MethodContext
from benchmark.engine.cached_encoder import CachedEncoder
from benchmark.engine.transformer_encoder import TransformerEncoder


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


class TrainableTransformer(nn.Module):
    """A private copy of a Hugging Face encoder; only its top `unfreeze_layers` layers train.

    Pooling and normalisation follow the frozen encoder it was copied from.
    """

    def __init__(self, source: TransformerEncoder, unfreeze_layers: int) -> None:
        super().__init__()
        self.tokenizer = source.tokenizer
        self.model = copy.deepcopy(source.model).train()
        # Fused (SDPA) attention kernels have no double backward; second-order MAML needs one.
        if hasattr(self.model, "set_attn_implementation"):
            self.model.set_attn_implementation("eager")
        self.pooling, self.normalize = source.pooling, source.normalize
        self.max_length = source.max_length
        layers = _encoder_layers(self.model)
        if not 1 <= unfreeze_layers <= len(layers):
            raise BenchmarkError(
                f"unfreeze_layers={unfreeze_layers}: the encoder has {len(layers)} layers"
            )
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for layer in layers[len(layers) - unfreeze_layers :]:
            for parameter in layer.parameters():
                parameter.requires_grad_(True)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        ).to(self.device)
        use_amp = self.device.type == "cuda"
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            hidden = self.model(**batch).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        return pooled


def _encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer blocks of a BERT-like model (`encoder.layer`)."""
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise BenchmarkError(
            f"cannot unfreeze layers of {type(model).__name__}: expected a BERT-like "
            "`encoder.layer` list"
        )
    return layers


class TextFeatures(nn.Module):
    """texts -> trainable features: frozen embeddings (cached) or a partly unfrozen encoder,
    followed by a residual adapter (`adapter_hidden` 0: none)."""

    def __init__(self, context: MethodContext, unfreeze_layers: int, adapter_hidden: int) -> None:
        super().__init__()
        self.context = context
        encoder = context.encoder
        if encoder is None:
            raise BenchmarkError("this method needs an encoder")
        self.transformer: TrainableTransformer | None = None
        if unfreeze_layers > 0:
            inner = encoder.inner if isinstance(encoder, CachedEncoder) else encoder
            if not isinstance(inner, TransformerEncoder):
                raise BenchmarkError(
                    f"unfreeze_layers={unfreeze_layers} needs a transformer encoder, "
                    f"not {encoder.name!r}"
                )
            self.transformer = TrainableTransformer(inner, unfreeze_layers)
        self.adapter = (
            ResidualAdapter(encoder.dim, adapter_hidden) if adapter_hidden > 0 else nn.Identity()
        )
        self.dim = encoder.dim
        self.to(context.device)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        if self.transformer is not None:
            return self.adapter(self.transformer(texts))
        return self.adapter(self.context.embed(texts))
