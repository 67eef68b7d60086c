"""Episode-level scores: the task's metric (accuracy or entity F1) per episode, macro-F1 per
classification episode, per-class (per entity type) counts pooled over every query, and for NER
the span F1 per episode and Few-NERD's span and type errors pooled over every query."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from benchmark.core.methods import Method
from benchmark.core.tagging import entities, entity_f1
from benchmark.core.types import Episode, Kind

METRICS: dict[Kind, str] = {"classification": "accuracy", "tagging": "entity-f1"}


class Tally(NamedTuple):
    """One class's pooled counts: queries (entities) it was right on, predicted, and gold."""

    correct: int
    predicted: int
    gold: int

    def __add__(self, other: tuple[int, ...]) -> Tally:  # type: ignore[override]
        return Tally(*(a + b for a, b in zip(self, other, strict=True)))

    def summary(self) -> dict[str, float | int]:
        """Precision, recall, F1 (0 where undefined, as scikit-learn's zero_division=0) and
        support."""
        c, p, g = self
        return {
            "precision": c / p if p else 0.0,
            "recall": c / g if g else 0.0,
            "f1": 2 * c / (p + g) if p + g else 0.0,
            "support": g,
            "predicted": p,
        }


class SpanErrors(NamedTuple):
    """Few-NERD's error analysis (Ding et al. 2021, section 6.3), pooled: predicted entities
    right in span and type, right in span only (type errors), and whose span no gold entity has
    (false positive span errors); gold entities whose span no prediction has (false negative);
    and of the false spans, those on words of an entity of a type the episode left out (tagged
    `O` in it) that touch no entity of the episode's types."""

    correct: int = 0
    wrong_type: int = 0
    false_span: int = 0
    missed_span: int = 0
    left_out: int = 0

    def __add__(self, other: tuple[int, ...]) -> SpanErrors:  # type: ignore[override]
        return SpanErrors(*(a + b for a, b in zip(self, other, strict=True)))

    def summary(self) -> dict[str, float | int | None]:
        """The counts and the type accuracy of the entities found with the right span (None
        when there are none)."""
        spans = self.correct + self.wrong_type
        return {**self._asdict(), "type_accuracy": self.correct / spans if spans else None}


@dataclass(frozen=True)
class Scores:
    """Scores of a run of episodes, in order: the task's metric and (classification only)
    macro-F1 per episode, per-class tallies pooled over all their queries, and (NER only) the
    span F1 per episode (entities matched by position, types ignored) and pooled span errors."""

    metric: list[float]
    macro_f1: list[float] = field(default_factory=list)
    classes: dict[str, Tally] = field(default_factory=dict)
    span_f1: list[float] = field(default_factory=list)
    errors: SpanErrors = field(default_factory=SpanErrors)

    @staticmethod
    def join(parts: Iterable[Scores]) -> Scores:
        """The scores of consecutive runs of episodes as one."""
        metric: list[float] = []
        macro: list[float] = []
        classes: dict[str, Tally] = {}
        span_f1: list[float] = []
        errors = SpanErrors()
        for part in parts:
            metric.extend(part.metric)
            macro.extend(part.macro_f1)
            for name, tally in part.classes.items():
                classes[name] = classes[name] + tally if name in classes else tally
            span_f1.extend(part.span_f1)
            errors = errors + part.errors
        return Scores(metric, macro, classes, span_f1, errors)

    def per_class(self) -> dict[str, dict[str, float | int]]:
        """Precision, recall, F1 and support of each class, in name order."""
        return {name: self.classes[name].summary() for name in sorted(self.classes)}


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    """Fraction of positions where `predicted` equals `gold`."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions for {len(gold)} gold labels")
    if not gold:
        raise ValueError("accuracy of an empty query set is undefined")
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def class_tallies(predicted: Sequence[str], gold: Sequence[str]) -> dict[str, Tally]:
    """Each label's correct, predicted and gold counts (labels seen in either sequence)."""
    right = Counter(g for p, g in zip(predicted, gold, strict=True) if p == g)
    guessed, true = Counter(predicted), Counter(gold)
    return {name: Tally(right[name], guessed[name], true[name]) for name in guessed | true}


def macro_f1(tallies: Mapping[str, Tally]) -> float:
    """Unweighted mean F1 over the labels that occur in the gold or predicted labels (scikit-
    learn's `f1_score(average="macro", zero_division=0)`), summed exactly."""
    values = [2 * c / (p + g) for c, p, g in tallies.values()]
    return math.fsum(values) / len(values)


def classification_scores(predicted: Sequence[str], gold: Sequence[str]) -> Scores:
    """One episode's accuracy, macro-F1 and class tallies."""
    score = accuracy(predicted, gold)
    tallies = class_tallies(predicted, gold)
    return Scores([score], [macro_f1(tallies)], tallies)


def tagging_scores(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    full: Sequence[Sequence[str]] | None = None,
) -> Scores:
    """One episode's entity F1, per-type entity tallies, span F1 and span errors; `full`, the
    sentences' own tags (the types the episode left out not re-tagged `O`), finds the false spans
    on entities of left-out types."""
    score = entity_f1(gold, predicted)
    true, guessed = entities(gold), entities(predicted)
    right = Counter(kind for kind, _, _ in true & guessed)
    found, wanted = Counter(k for k, _, _ in guessed), Counter(k for k, _, _ in true)
    tallies = {kind: Tally(right[kind], found[kind], wanted[kind]) for kind in found | wanted}
    true_spans = {s[1:] for s in true}
    spans = len(true_spans & {s[1:] for s in guessed})  # one type per span in BIO
    span_f1 = 2 * spans / (len(true) + len(guessed)) if true or guessed else 0.0
    left_out = 0
    if full is not None:
        hidden = _positions(entities(full) - true)
        shown = _positions(true)
        for _, first, last in guessed:
            words = set(range(first, last + 1))
            if (first, last) not in true_spans and words & hidden and not words & shown:
                left_out += 1
    errors = SpanErrors(len(true & guessed), spans - len(true & guessed), len(guessed) - spans,
                        len(true) - spans, left_out)  # fmt: skip
    return Scores([score], [], tallies, [span_f1], errors)


def _positions(found: set[tuple[str, int, int]]) -> set[int]:
    """Every word position the entities cover."""
    return {i for _, first, last in found for i in range(first, last + 1)}


def score_episode(kind: Kind, method: Method, episode: Episode, rng: random.Random) -> Scores:
    """Fit on the support set, predict the query set, and score: accuracy (with macro-F1 and
    class tallies) or entity F1 (with entity-type tallies)."""
    predictor = method.fit(episode.support, rng)
    if kind == "tagging":
        predicted = predictor.predict([s.tokens for s in episode.query])
        if [len(p) for p in predicted] != [len(s.tokens) for s in episode.query]:
            raise ValueError("a tagging method must return one tag per query token")
        full = [s.full_tags or s.tags for s in episode.query]  # type: ignore[union-attr]
        return tagging_scores([s.tags for s in episode.query], predicted, full)
    predicted = predictor.predict([e.text for e in episode.query])
    return classification_scores(predicted, [e.label for e in episode.query])
