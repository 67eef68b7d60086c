"""NER error analysis (Few-NERD, Ding et al. 2021, section 6.3): span F1 and span and type
errors per episode, pooled over a cell, in records and in `results --span-errors`."""

from __future__ import annotations

import random

import pytest
from seqeval.metrics import f1_score

from benchmark.cli import main
from benchmark.core.metrics import Scores, SpanErrors, tagging_scores
from benchmark.core.tagging import restrict
from benchmark.core.types import TaggedSentence
from benchmark.engine.store import load_records

GOLD = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O", "B-PER", "O"], ["O", "B-LOC", "I-LOC"]]
PREDICTED = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O", "O", "O"], ["O", "B-LOC", "O"]]


def test_errors_of_a_hand_checked_episode():
    # PER 0-1 and ORG right; ORG on LOC's span: a type error; LOC 1-1 for LOC 1-2: a false
    # span; the second PER and that LOC 1-2 are missed spans.
    scores = tagging_scores(GOLD, PREDICTED)
    assert scores.errors == SpanErrors(correct=2, wrong_type=1, false_span=1, missed_span=2,
                                       left_out=0)  # fmt: skip
    assert scores.metric == [pytest.approx(4 / 9)]
    assert scores.span_f1 == [pytest.approx(6 / 9)]
    assert scores.errors.summary()["type_accuracy"] == pytest.approx(2 / 3)
    assert SpanErrors().summary()["type_accuracy"] is None


def test_false_spans_on_entities_of_left_out_types():
    gold = [["B-PER", "I-PER", "O", "O", "O"]]
    full = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]  # LOC left out of the episode: O in gold
    predicted = [["B-PER", "B-PER", "O", "O", "B-PER"]]  # two fragments of PER, one on LOC
    assert tagging_scores(gold, predicted, full).errors == SpanErrors(0, 0, 3, 1, left_out=1)
    assert tagging_scores(gold, predicted).errors.left_out == 0
    assert tagging_scores(gold, predicted, gold).errors.left_out == 0


def test_episodes_keep_each_sentence_own_tags_outside_equality():
    sentence = TaggedSentence("s1", ("a", "b", "c"), ("B-PER", "O", "B-LOC"))
    shown = restrict(sentence, frozenset({"PER"}))
    assert shown.tags == ("B-PER", "O", "O") and shown.full_tags == sentence.tags
    assert shown == TaggedSentence("s1", ("a", "b", "c"), ("B-PER", "O", "O"))
    assert hash(shown) == hash(TaggedSentence("s1", ("a", "b", "c"), ("B-PER", "O", "O")))
    assert restrict(shown, frozenset()).full_tags == sentence.tags  # never the episode's tags


def random_bio(rng: random.Random, length: int) -> list[str]:
    """A valid BIO sequence over three types."""
    tags: list[str] = []
    for _ in range(length):
        previous = tags[-1] if tags else "O"
        choice = rng.random()
        if previous != "O" and choice < 0.3:
            tags.append("I-" + previous[2:])
        elif choice < 0.6:
            tags.append("B-" + rng.choice("ABC"))
        else:
            tags.append("O")
    return tags


def merged(sentences: list[list[str]]) -> list[list[str]]:
    """Every entity type renamed X."""
    return [[tag[:2] + "X" if tag != "O" else tag for tag in s] for s in sentences]


def test_span_f1_is_seqeval_f1_with_types_merged_and_counts_add_up():
    rng = random.Random(0)
    for _ in range(300):
        full = [random_bio(rng, rng.randint(1, 8)) for _ in range(rng.randint(1, 4))]
        shown = frozenset(t for t in "ABC" if rng.random() < 0.6)
        gold = [list(restrict(TaggedSentence("s", tuple(f), tuple(f)), shown).tags) for f in full]
        predicted = [random_bio(rng, len(g)) for g in gold]
        scores = tagging_scores(gold, predicted, full)
        want = f1_score(merged(gold), merged(predicted), zero_division=0)
        assert scores.span_f1 == [pytest.approx(want, abs=1e-12)]
        assert scores.span_f1[0] >= scores.metric[0] - 1e-12
        c, wrong, false, missed, left_out = scores.errors
        assert 0 <= left_out <= false
        assert tagging_scores(gold, predicted, gold).errors == (c, wrong, false, missed, 0)
        tallies = scores.classes.values()
        assert c == sum(t.correct for t in tallies)
        assert c + wrong + false == sum(t.predicted for t in tallies)
        assert c + wrong + missed == sum(t.gold for t in tallies)


def test_joined_scores_pool_the_errors_and_keep_span_f1_per_episode():
    first = tagging_scores(GOLD, PREDICTED)
    second = tagging_scores(GOLD, GOLD)
    joined = Scores.join([first, second])
    assert joined.span_f1 == [*first.span_f1, 1.0]
    assert joined.errors == SpanErrors(7, 1, 1, 2, 0)


def test_records_and_results_span_errors_table(tmp_path, capsys):
    out = str(tmp_path)
    run = ["run", "--task", "crossner-music", "--method", "ner-protonet-frozen", "--encoder",
           "hashing-bow", "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "5",
           "--seeds", "1", "--out", out, "--no-progress"]  # fmt: skip
    assert main(run) == 0
    (record,) = load_records(tmp_path)
    errors = record["span_errors"]
    assert len(errors["span_f1"]["per_episode"]) == 5
    assert errors["span_f1"]["mean"] == pytest.approx(sum(errors["span_f1"]["per_episode"]) / 5)
    predicted = sum(t["predicted"] for t in record["per_class"].values())
    assert errors["correct"] + errors["wrong_type"] + errors["false_span"] == predicted > 0
    assert 0 < errors["left_out"] < errors["false_span"]  # 3 of music's 13 types per episode
    capsys.readouterr()
    assert main(["results", out, "--span-errors"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "| crossner" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [
        "crossner-music", "ner-protonet-frozen", "3w-1s-2q", f"{100 * record['mean']:.2f}",
        f"{100 * errors['span_f1']['mean']:.2f}", f"{100 * errors['type_accuracy']:.1f}",
        *(str(errors[k]) for k in ("correct", "wrong_type", "false_span", "left_out",
                                   "missed_span")),
    ]  # fmt: skip
