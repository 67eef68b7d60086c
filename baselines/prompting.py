"""Prompts for language-model methods: verbalizers, templates, demonstration order and
truncation to the model's context. Pure functions over texts and token counts.

A template holds `{text}` and then `{label}` (`icl`) or `{mask}` (`prompt-finetune`). A label's
verbalizer is its name made readable (`todo_list` -> "todo list") unless a file maps it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from benchmark.core.configs import ConfigError
from benchmark.core.errors import SpecError
from benchmark.core.types import Example

Order = Literal["random", "round-robin", "support"]


def readable(label: str) -> str:
    """A label name as words: underscores and hyphens become spaces; all-caps names lower-case."""
    words = " ".join(label.replace("_", " ").replace("-", " ").split())
    return words.lower() if words.isupper() else words


def read_verbalizers(path: str) -> dict[str, str]:
    """A verbalizer file: a JSON object `{label: words}`, or lines `label<TAB>words`."""
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"verbalizers={path}: cannot read it ({error.strerror})") from error
    if file.suffix == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{file}:{error.lineno}: not JSON ({error.msg})") from error
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ConfigError(f"{file}: expected a JSON object of label -> words")
        return {str(k): v for k, v in mapping.items()}
    mapping = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        label, tab, words = line.partition("\t")
        if not tab:
            raise ConfigError(f"{file}:{number}: expected 'label<TAB>words', got {line!r}")
        mapping[label.strip()] = words.strip()
    return mapping


def verbalizers_for(labels: Sequence[str], mapping: Mapping[str, str] | None) -> list[str]:
    """Each label's words: from `mapping` when given (every label must be in it), else readable."""
    if mapping is None:
        return [readable(label) for label in labels]
    missing = [label for label in labels if label not in mapping]
    if missing:
        raise SpecError(
            f"the verbalizer file has no words for label(s) {', '.join(map(repr, missing))}"
        )
    return [mapping[label] for label in labels]


def check_token_ids(labels: Sequence[str], words: Sequence[str], ids: Sequence[list[int]]) -> None:
    """Refuse a verbalizer that tokenises to nothing, and two labels with the same tokens."""
    for label, word, tokens in zip(labels, words, ids, strict=True):
        if not word.strip():
            raise SpecError(f"the verbalizer of label {label!r} is empty ({word!r})")
        if not tokens:
            raise SpecError(f"the verbalizer {word!r} of label {label!r} tokenises to nothing")
    seen: dict[tuple[int, ...], str] = {}
    for label, tokens in zip(labels, ids, strict=True):
        other = seen.setdefault(tuple(tokens), label)
        if other != label:
            raise SpecError(
                f"labels {other!r} and {label!r} have verbalizers with the same tokens {tokens}; "
                "give distinct words (option verbalizers=FILE)"
            )


@dataclass(frozen=True)
class Template:
    """A prompt template split at its slot: `before` holds `{text}`, `after` follows the slot."""

    before: str
    after: str

    def context(self, text: str) -> str:
        """The template up to the slot, filled with `text`."""
        return self.before.replace("{text}", text)


def parse_template(template: str, slot: str) -> Template:
    """`"Input: {text}\\nLabel: {label}"` -> the parts before and after `{label}`; refused
    unless `{text}` comes once and before the one slot."""
    marker = "{" + slot + "}"
    if template.count("{text}") != 1 or template.count(marker) != 1:
        raise ConfigError(
            f"template {template!r}: needs {{text}} once and {marker} once (got "
            f"{template.count('{text}')} and {template.count(marker)})"
        )
    before, _, after = template.partition(marker)
    if "{text}" not in before:
        raise ConfigError(f"template {template!r}: {{text}} must come before {marker}")
    return Template(before, after)


def demonstration_order(support: Sequence[Example], order: Order, rng: random.Random) -> list[int]:
    """Indices of the support examples in prompt order.

    `random` shuffles them with the episode's method rng; `round-robin` takes one example of
    each class in turn, classes in an rng-drawn order; `support` keeps the sampler's order.
    """
    indices = list(range(len(support)))
    if order == "support":
        return indices
    if order == "random":
        rng.shuffle(indices)
        return indices
    by_class: dict[str, list[int]] = {}
    for i in indices:
        by_class.setdefault(support[i].label, []).append(i)
    classes = sorted(by_class)
    rng.shuffle(classes)
    out = []
    for rank in range(max(len(v) for v in by_class.values())):
        out += [by_class[c][rank] for c in classes if rank < len(by_class[c])]
    return out


def fit_demonstrations(lengths: Sequence[int], labels: Sequence[str], room: int) -> list[int]:
    """Which demonstrations (positions in prompt order) to keep so that their tokens fit `room`.

    Whole demonstrations are dropped, each time the last one of the class that has the most
    left (so classes stay balanced), until the rest fit. Refused when even one demonstration
    per class does not fit, with the token counts.
    """
    if minimal_tokens(lengths, labels) > room:
        raise SpecError(
            f"the prompt cannot hold one demonstration per class: the shortest one of each "
            f"class take {minimal_tokens(lengths, labels)} tokens, and {room} are left for "
            "demonstrations once the query and the longest verbalizer are in (use shorter "
            "texts, fewer classes or a model with a longer context)"
        )
    kept = list(range(len(lengths)))
    while sum(lengths[i] for i in kept) > room:
        counts: dict[str, int] = {}
        for i in kept:
            counts[labels[i]] = counts.get(labels[i], 0) + 1
        most = max(counts.values())
        if most == 1:  # one each and still too long: each class's shortest one fits
            shortest = {}
            for i in range(len(lengths)):
                best = shortest.get(labels[i])
                if best is None or lengths[i] < lengths[best]:
                    shortest[labels[i]] = i
            return sorted(shortest.values())
        kept.remove(max(i for i in kept if counts[labels[i]] == most))
    return kept


def minimal_tokens(lengths: Sequence[int], labels: Sequence[str]) -> int:
    """Tokens of the shortest demonstration of each class, summed."""
    shortest: dict[str, int] = {}
    for length, label in zip(lengths, labels, strict=True):
        shortest[label] = min(length, shortest.get(label, length))
    return sum(shortest.values())
