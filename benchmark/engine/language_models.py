"""Language models for prompting: a causal LM (`icl`) or a masked LM (`prompt-finetune`), by
hub name or local folder, with the architecture checked before any weights load.

A hub name needs network unless the model is in the local Hugging Face cache; a folder is used
as it is. The revision that goes into a cell's identity is the hub snapshot's commit hash or a
hash of the folder's files (`folder_revision`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from benchmark.core.errors import BenchmarkError
from benchmark.engine.encoders import download_from_hub
from benchmark.engine.transformer_encoder import folder_revision

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

LMKind = Literal["causal", "masked"]
WANTED = {"causal": "a causal (GPT-style) language model", "masked": "a masked language model"}


def model_folder(name: str, what: str) -> Path:
    """A local folder, or a hub snapshot of `name` (downloaded when not cached)."""
    if not name:
        raise BenchmarkError(f"{what} needs a language model: --lm NAME|PATH")
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    return download_from_hub(name, f"{what}: language model", "pass a local model folder")


def architecture(config: PretrainedConfig) -> str:
    """How a model reads in messages: its saved architecture, else its model type."""
    names = getattr(config, "architectures", None) or []
    return ", ".join(names) or f"model type {config.model_type!r}"


def lm_kind(config: PretrainedConfig) -> LMKind | None:
    """Whether a config is a causal LM, a masked LM, or neither (encoder-decoders: neither)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return None
    names = getattr(config, "architectures", None) or []
    if any(n.endswith(("ForCausalLM", "LMHeadModel")) for n in names):
        return "causal"
    if any(n.endswith("ForMaskedLM") for n in names):
        return "masked"
    if names:  # e.g. a bare BertModel or a classifier: no LM head was saved
        return None
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not config.is_decoder:
        return "masked"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal"
    return None


def check_kind(folder: Path, wanted: LMKind, what: str) -> PretrainedConfig:
    """The folder's config, or a BenchmarkError naming the architecture when it is not `wanted`."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    if lm_kind(config) != wanted:
        hint = "use icl" if lm_kind(config) == "causal" else "use prompt-finetune"
        hint = hint if lm_kind(config) else "it has no language-model head"
        raise BenchmarkError(
            f"{what} needs {WANTED[wanted]}, but {str(folder)!r} is {architecture(config)} ({hint})"
        )
    return config


def lm_revision(name: str, wanted: LMKind, what: str) -> str:
    """The revision of the model `name` names, after checking its kind (for a cell's identity)."""
    folder = model_folder(name, what)
    check_kind(folder, wanted, what)
    return folder_revision(folder)


def load_lm(
    name: str, wanted: LMKind, device: str, what: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model (evaluation mode, on `device`) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    folder = model_folder(name, what)
    check_kind(folder, wanted, what)
    from transformers.utils import logging

    auto = AutoModelForCausalLM if wanted == "causal" else AutoModelForMaskedLM
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # transformers' "Loading weights" bar, once per cell
    try:
        model = auto.from_pretrained(folder).to(device).eval()
    finally:
        if shown:
            logging.enable_progress_bar()
    return model, AutoTokenizer.from_pretrained(folder)


def context_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The most tokens the model takes in one sequence."""
    config = model.config
    for field in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length"):
        value = getattr(config, field, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", 0)
    if 0 < limit < 10**9:
        return int(limit)
    raise BenchmarkError(f"cannot tell the context length of {architecture(config)}")
