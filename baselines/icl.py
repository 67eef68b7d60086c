"""`icl`: in-context learning with a Hugging Face causal LM on the suite's episodes.

The support examples become the demonstrations, in an order drawn from the episode's method
rng; each query is labelled by the summed log-likelihood of every label's verbalizer tokens
after the prompt, optionally calibrated (Zhao et al. 2021: divided by the label probabilities
given content-free inputs). A prompt longer than the model's context loses whole
demonstrations, keeping the classes balanced; the record's `method_report` says how many were
kept per episode. Scoring runs the demonstrations once and reuses their key/value cache
(`baselines.lm_scoring`); the first query of a cell is also scored by full forward passes, and
the cell fails if the two disagree.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from baselines.lm_scoring import PromptTokens, cached_log_likelihoods, naive_log_likelihoods
from baselines.prompting import (
    Order,
    check_token_ids,
    demonstration_order,
    fit_demonstrations,
    parse_template,
    read_verbalizers,
    verbalizers_for,
)
from benchmark.core.errors import BenchmarkError, SpecError
from benchmark.core.methods import METHODS, MethodContext, MethodEntry
from benchmark.core.types import Episode, Example
from benchmark.engine.language_models import LMKind, architecture, context_length, load_lm


@dataclass(frozen=True)
class ICLConfig:
    """In-context learning with the causal LM `lm` (hub name or folder). Each demonstration is
    `template` filled with a support text and its label's words, joined by `separator` after an
    optional `instruction`; `order` is random, round-robin (one per class in turn) or support;
    `verbalizers` a JSON or TSV file of label words (default: readable label names);
    `calibrate` divides by the label probabilities given the `|`-separated `content_free`
    inputs; `max_length` caps the prompt (0: the model's context); `max_batch` caps the cached
    sequences per forward pass."""

    lm_kind: ClassVar[LMKind] = "causal"
    lm: str = ""
    template: str = "Input: {text}\nLabel: {label}"
    separator: str = "\n\n"
    instruction: str = ""
    order: Order = "random"
    verbalizers: str = ""
    calibrate: bool = False
    content_free: str = "N/A"
    max_length: int = 0
    max_batch: int = 16


class PromptBuilder:
    """Token ids of a config's prompt pieces, each piece tokenised on its own (so token counts
    add up exactly); spaces before the label slot belong to the verbalizer, as a causal LM
    writes them."""

    def __init__(self, tokenizer: Any, config: ICLConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config
        self.template = parse_template(config.template, "label")
        before = self.template.before
        self.space = "" if before.endswith("{text}") else before[len(before.rstrip(" ")) :]
        self.header = tokenizer(
            config.instruction + config.separator if config.instruction else "",
            add_special_tokens=True,
        )["input_ids"]
        self._memo: dict[tuple[str, str], list[int]] = {}

    def _ids(self, kind: str, text: str) -> list[int]:
        key = (kind, text)
        if key not in self._memo:
            self._memo[key] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._memo[key]

    def demonstration(self, text: str, words: str) -> list[int]:
        filled = self.template.context(text).rstrip(" ") + self.space + words
        return self._ids("demo", filled + self.template.after + self.config.separator)

    def query(self, text: str) -> list[int]:
        ids = self._ids("query", self.template.context(text).rstrip(" "))
        if not ids:
            raise SpecError(f"the prompt of query {text!r} tokenises to nothing")
        return ids

    def verbalizer(self, words: str) -> list[int]:
        return self._ids("verbalizer", self.space + words)


@dataclass(frozen=True)
class EpisodePlan:
    """What goes into one episode's prompt: label names and their tokens, kept demonstrations."""

    names: list[str]
    verbalizers: list[list[int]]
    demonstrations: list[list[int]]
    given: int


class InContextLearning:
    """In-context learning with a causal LM; see the module docstring."""

    def __init__(self, config: ICLConfig, context: MethodContext) -> None:
        self.config = config
        self.model, tokenizer = load_lm(config.lm, config.lm_kind, context.device, "method 'icl'")
        self.builder = PromptBuilder(tokenizer, config)
        self.mapping = read_verbalizers(config.verbalizers) if config.verbalizers else None
        limit = context_length(self.model, tokenizer)
        self.limit = min(limit, config.max_length) if config.max_length > 0 else limit
        self.content_free = config.content_free.split("|") if config.calibrate else []
        self.report: dict[str, list[int]] = {"given": [], "kept": [], "prompt_tokens": []}
        self.checked = False

    def plan(
        self, support: Sequence[Example], queries: Sequence[str], order: list[int]
    ) -> EpisodePlan:
        """The label tokens and the demonstrations that fit beside the longest query."""
        names = sorted({e.label for e in support})
        words = verbalizers_for(names, self.mapping)
        verbalizers = [self.builder.verbalizer(w) for w in words]
        check_token_ids(names, words, verbalizers)
        word_of = dict(zip(names, words, strict=True))
        demos = [
            self.builder.demonstration(support[i].text, word_of[support[i].label]) for i in order
        ]
        longest = max(len(self.builder.query(t)) for t in [*queries, *self.content_free])
        room = self.limit - len(self.builder.header) - longest - max(map(len, verbalizers))
        kept = fit_demonstrations([len(d) for d in demos], [support[i].label for i in order], room)
        return EpisodePlan(names, verbalizers, [demos[i] for i in kept], len(demos))

    def check_episodes(self, episodes: Sequence[Episode]) -> None:
        """Refuse, before any forward pass, an episode whose prompt cannot hold one
        demonstration per class (with the token counts) or whose verbalizers are unusable."""
        for episode in episodes:
            try:
                self.plan(
                    episode.support,
                    [e.text for e in episode.query],
                    list(range(len(episode.support))),
                )
            except SpecError as error:
                raise SpecError(
                    f"icl, episode {episode.index} of seed {episode.seed} (context "
                    f"{self.limit} tokens): {error}"
                ) from None

    def fit(self, support: Sequence[Example], rng: random.Random) -> ICLPredictor:
        return ICLPredictor(self, support, demonstration_order(support, self.config.order, rng))

    def scores(self, plan: EpisodePlan, texts: Sequence[str]) -> torch.Tensor:
        """(queries, labels) scores: log-likelihoods, calibrated when asked."""
        prefix = list(self.builder.header) + [t for d in plan.demonstrations for t in d]
        queries = [self.builder.query(t) for t in [*texts, *self.content_free]]
        prompt = PromptTokens(prefix, queries, plan.verbalizers)
        self.report["given"].append(plan.given)
        self.report["kept"].append(len(plan.demonstrations))
        self.report["prompt_tokens"].append(len(prefix))
        likelihoods = cached_log_likelihoods(self.model, prompt, self.config.max_batch)
        if not self.checked:
            self.check_against_naive(prompt, likelihoods[0])
        return calibrated(likelihoods[: len(texts)], likelihoods[len(texts) :])

    def check_against_naive(self, prompt: PromptTokens, first: torch.Tensor) -> None:
        """Once per cell: the first query's packed scores against full forward passes, so a
        model whose attention ignores the packed mask fails loudly instead of scoring wrong."""
        alone = dataclasses.replace(prompt, queries=prompt.queries[:1])
        naive = naive_log_likelihoods(self.model, alone)[0]
        gap = float((naive - first).abs().max())
        tolerance = 0.05 if self.model.device.type == "cuda" else 1e-3  # bf16 on CUDA
        if gap > tolerance:
            raise BenchmarkError(
                f"icl: {architecture(self.model.config)} gives other log-likelihoods with the "
                f"prefix cache and packed queries than with full forward passes (max gap "
                f"{gap:.3g}); its attention may not take a custom 4-D mask"
            )
        self.checked = True

    def cell_report(self) -> dict[str, Any]:
        """For the record: demonstrations given and kept, and prompt tokens, per episode."""
        kept, given = self.report["kept"], self.report["given"]
        return {
            "demonstrations_given": given,
            "demonstrations_kept": kept,
            "prompt_tokens": self.report["prompt_tokens"],
            "truncated_episodes": sum(k < g for k, g in zip(kept, given, strict=True)),
        }


def calibrated(likelihoods: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """Contextual calibration: log p(label | query) - log p_cf(label), both normalised over the
    labels, p_cf the mean over the content-free inputs; unchanged without such inputs."""
    if content_free.shape[0] == 0:
        return likelihoods
    reference = content_free.log_softmax(-1).exp().mean(0).log()
    return likelihoods.log_softmax(-1) - reference


@dataclass(frozen=True)
class ICLPredictor:
    method: InContextLearning
    support: Sequence[Example]
    order: list[int]

    def predict(self, texts: Sequence[str]) -> list[str]:
        plan = self.method.plan(self.support, texts, self.order)
        scores = self.method.scores(plan, texts)
        return [plan.names[i] for i in scores.argmax(-1).tolist()]


METHODS.add(
    "icl",
    MethodEntry(
        "in-context learning with a causal LM (--lm): support examples as demonstrations, "
        "labels by verbalizer log-likelihood (optionally calibrated); demonstrations' "
        "key/value cache reused across queries",
        ICLConfig(),
        InContextLearning,
        needs_encoder=False,
    ),
)
