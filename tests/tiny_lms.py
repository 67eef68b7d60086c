"""Tiny randomly initialised language models saved as Hugging Face folders, for mechanics tests:
a GPT-2 (byte-level BPE) and a BERT masked LM (WordPiece), with tokenizers trained on `corpus`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


def tiny_causal_lm(
    folder: Path, corpus: Sequence[str], positions: int = 256, seed: int = 0
) -> Path:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on `corpus`, saved in `folder`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(corpus), vocab_size=400, min_frequency=1,
                            special_tokens=["<|endoftext|>"])  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=positions,
                        vocab_size=len(tokenizer), eos_token_id=0, bos_token_id=0)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_masked_lm(folder: Path, corpus: Sequence[str], seed: int = 0) -> Path:
    """A 2-layer BERT masked LM with a WordPiece tokenizer trained on `corpus`, in `folder`."""
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import BertProcessing
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator([*corpus, "."], vocab_size=300, min_frequency=1)
    wordpiece.post_processor = BertProcessing(
        ("[SEP]", wordpiece.token_to_id("[SEP]")), ("[CLS]", wordpiece.token_to_id("[CLS]"))
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=wordpiece, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
        cls_token="[CLS]", mask_token="[MASK]",
    )  # fmt: skip
    torch.manual_seed(seed)
    config = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128,
                        vocab_size=len(tokenizer))  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
