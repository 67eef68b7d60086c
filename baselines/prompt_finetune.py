"""`prompt-finetune`: PET / LM-BFF-style prompt-based fine-tuning of a masked LM per episode.

Each text is put into a cloze template (`{text} It was {mask}.`); a label scores the mean
log-probability of its verbalizer's tokens at as many masks. The masked LM, head included, is
fine-tuned on the support set with cross-entropy over the labels' scores for a fixed budget (as
`finetune-full`), then queries take the best-scoring label. Every episode starts again from the
pretrained weights; dropout and batches follow the episode's method rng.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from baselines.lm_scoring import precision
from baselines.prompting import (
    check_token_ids,
    parse_template,
    read_verbalizers,
    verbalizers_for,
)
from baselines.transfer import seeded_torch
from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry, label_index
from benchmark.core.types import Example
from benchmark.engine.language_models import LMKind, architecture, load_lm


@dataclass(frozen=True)
class PromptFinetuneConfig:
    """Prompt-based fine-tuning of the masked LM `lm` (hub name or folder): `template` holds
    `{text}` and `{mask}`; `verbalizers` a JSON or TSV file of label words (default: readable
    label names); `steps` AdamW steps of `batch_size` support examples at `lr`; texts cut to
    `max_length` tokens with the template."""

    lm_kind: ClassVar[LMKind] = "masked"
    lm: str = ""
    template: str = "{text} It was {mask}."
    verbalizers: str = ""
    steps: int = 20
    batch_size: int = 8
    lr: float = 1e-5
    weight_decay: float = 0.01
    max_length: int = 128


class ClozeInputs:
    """Token ids of cloze inputs: the text cut to fit, then the template with `n` masks."""

    def __init__(self, tokenizer: Any, template: str, max_length: int) -> None:
        if tokenizer.mask_token_id is None:
            raise BenchmarkError("prompt-finetune needs a tokenizer with a mask token")
        self.tokenizer = tokenizer
        parts = parse_template(template, "mask")
        head, _, middle = parts.before.partition("{text}")
        self.space = middle[len(middle.rstrip(" ")) :]
        # the spaces before the mask belong to the label's words (" great"), as the LM reads them
        self.head, self.middle, self.tail = (
            self._ids(head),
            self._ids(middle.rstrip(" ")),
            self._ids(parts.after),
        )
        probe = tokenizer(tokenizer.mask_token)["input_ids"]  # the special tokens around a text
        at = probe.index(tokenizer.mask_token_id)
        self.before, self.after = probe[:at], probe[at + 1 :]
        fixed = len(probe) - 1 + len(self.head) + len(self.middle) + len(self.tail)
        self.room = max_length - fixed

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    def words(self, words: str) -> list[int]:
        """A verbalizer's tokens as they follow the template's text before the mask."""
        return self._ids(self.space + words)

    def build(self, text: str, masks: int) -> tuple[list[int], int]:
        """The input ids and the position of the first mask."""
        body = self.head + self._ids(text)[: max(0, self.room - masks)] + self.middle
        masks_ids = [self.tokenizer.mask_token_id] * masks
        return self.before + body + masks_ids + self.tail + self.after, len(self.before) + len(body)


class PromptFinetune:
    """Prompt-based fine-tuning of a masked LM; see the module docstring.

    The predictor uses the method's one model: predict with it before the next `fit`.
    """

    def __init__(self, config: PromptFinetuneConfig, context: MethodContext) -> None:
        self.config = config
        what = "method 'prompt-finetune'"
        self.model, tokenizer = load_lm(config.lm, config.lm_kind, context.device, what)
        self.device = next(self.model.parameters()).device
        self.cloze = ClozeInputs(tokenizer, config.template, config.max_length)
        if self.cloze.room < 1:
            raise BenchmarkError(
                f"max_length={config.max_length} leaves no room for the text in the template "
                f"of {architecture(self.model.config)}"
            )
        self.mapping = read_verbalizers(config.verbalizers) if config.verbalizers else None
        self.initial = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def label_tokens(self, names: list[str]) -> list[list[int]]:
        words = verbalizers_for(names, self.mapping)
        tokens = [self.cloze.words(w) for w in words]
        check_token_ids(names, words, tokens)
        return tokens

    def scores(self, texts: Sequence[str], labels: list[list[int]]) -> torch.Tensor:
        """(texts, labels): the mean log-probability of each label's tokens at its masks."""
        out = torch.zeros(len(texts), len(labels), device=self.device)
        for masks in sorted({len(t) for t in labels}):
            built = [self.cloze.build(text, masks) for text in texts]
            width = max(len(ids) for ids, _ in built)
            ids = torch.full((len(texts), width), self.cloze.tokenizer.pad_token_id or 0)
            attention = torch.zeros(len(texts), width, dtype=torch.long)
            for i, (row, _) in enumerate(built):
                ids[i, : len(row)] = torch.tensor(row)
                attention[i, : len(row)] = 1
            with precision(self.device):
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=attention.to(self.device)
                ).logits.float()
            starts = torch.tensor([start for _, start in built], device=self.device)
            rows = torch.arange(len(texts), device=self.device)
            at_masks = [logits[rows, starts + t].log_softmax(-1) for t in range(masks)]
            for label, tokens in enumerate(labels):
                if len(tokens) == masks:
                    picked = [at_masks[t][:, token] for t, token in enumerate(tokens)]
                    out[:, label] = torch.stack(picked).mean(0)
        return out

    def fit(self, support: Sequence[Example], rng: random.Random) -> PromptPredictor:
        names, targets = label_index(support)
        labels = self.label_tokens(names)
        texts = [e.text for e in support]
        config = self.config
        with seeded_torch(rng):
            self.model.load_state_dict(self.initial)
            self.model.train()
            optimiser = torch.optim.AdamW(
                self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
            )
            with torch.enable_grad():
                for _ in range(config.steps):
                    batch = rng.sample(range(len(texts)), min(config.batch_size, len(texts)))
                    scores = self.scores([texts[i] for i in batch], labels)
                    loss = torch.nn.functional.cross_entropy(scores, targets[batch].to(self.device))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        self.model.eval()
        return PromptPredictor(self, names, labels)


@dataclass(frozen=True)
class PromptPredictor:
    method: PromptFinetune
    names: list[str]
    labels: list[list[int]]

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[str]:
        out = []
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                scores = self.method.scores(texts[start : start + batch_size], self.labels)
                out += [self.names[i] for i in scores.argmax(-1).tolist()]
        return out


METHODS.add(
    "prompt-finetune",
    MethodEntry(
        "prompt-based fine-tuning (PET / LM-BFF): a masked LM (--lm) fine-tuned per episode on "
        "a cloze template, labels by verbalizer log-probability at the mask",
        PromptFinetuneConfig(),
        PromptFinetune,
        needs_encoder=False,
    ),
)
