"""StructShot: abstract transition counts, their expansion to an episode's tags, Viterbi, and
meta-training (counting) through the runner."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from baselines.ner import (
    ABSTRACT,
    StructShot,
    StructShotConfig,
    abstract_log_probs,
    count_transitions,
    expand_transitions,
    viterbi,
)
from benchmark.cli import main
from benchmark.core.methods import MethodContext
from benchmark.core.types import Episode, TaggedSentence
from benchmark.engine.checkpoints import load_checkpoint

NEG = float("-inf")
# Measured on the 20 episodes below: entity F1 NNShot 10.4 +- 4.7, StructShot 11.5 +- 5.3 (on
# 100 test episodes: NNShot 8.6 +- 1.7, StructShot 12.3 +- 2.3, paired difference +3.7 +- 1.5).
FLOOR_NNSHOT = 0.05
FLOOR_STRUCTSHOT = 0.05


def sentence(uid: str, tags: str) -> TaggedSentence:
    tag_list = tuple(tags.split())
    return TaggedSentence(uid, tuple(f"w{i}" for i in range(len(tag_list))), tag_list)


def counted(sentences: list[TaggedSentence]) -> dict[str, int]:
    return {n: int(c) for n, c in zip(ABSTRACT, count_transitions(sentences), strict=True) if c}


def test_transition_counts_match_a_hand_count():
    sentences = [
        sentence("1", "B-per I-per O B-loc B-loc I-loc O"),
        sentence("2", "O O B-per B-org"),
    ]
    assert counted(sentences) == {
        "start->O": 1,  # sentence 2
        "start->B": 1,  # sentence 1
        "O->O": 1,  # O O
        "O->B": 2,  # O B-loc, O B-per
        "E->O": 2,  # I-per O, I-loc O
        "E->B same": 1,  # B-loc B-loc
        "E->B other": 1,  # B-per B-org
        "E->I same": 2,  # B-per I-per, B-loc I-loc
    }
    with pytest.raises(ValueError, match="'O' -> 'I-per' in bad is not valid BIO"):
        count_transitions([sentence("bad", "O I-per")])


def test_abstract_probabilities_are_smoothed_per_row():
    counts = torch.tensor([3.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    probs = abstract_log_probs(counts, smoothing=1.0).exp()
    assert probs.tolist() == pytest.approx([4 / 6, 2 / 6, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25])


def test_expansion_shares_mass_among_types_and_forbids_invalid_bio():
    # start: O 0.6, B 0.4; O: O 0.7, B 0.3; E: O 0.4, B same 0.1, B other 0.2, I same 0.3.
    log_probs = torch.tensor([0.6, 0.4, 0.7, 0.3, 0.4, 0.1, 0.2, 0.3], dtype=torch.float64).log()
    tags = ["B-a", "B-b", "I-a", "I-b", "O"]
    start, matrix = expand_transitions(log_probs, tags)
    expected_start = [0.2, 0.2, 0.0, 0.0, 0.6]
    expected = [
        # to: B-a  B-b  I-a  I-b  O
        [0.1, 0.2, 0.3, 0.0, 0.4],  # from B-a
        [0.2, 0.1, 0.0, 0.3, 0.4],  # from B-b
        [0.1, 0.2, 0.3, 0.0, 0.4],  # from I-a
        [0.2, 0.1, 0.0, 0.3, 0.4],  # from I-b
        [0.15, 0.15, 0.0, 0.0, 0.7],  # from O
    ]
    assert start.exp().tolist() == pytest.approx(expected_start)
    assert matrix.exp().tolist() == [pytest.approx(row) for row in expected]
    assert matrix[4, 2] == NEG and start[2] == NEG and matrix[0, 3] == NEG


def test_expansion_renormalises_over_the_tags_of_the_support():
    # No I-a in the support: B-a's row keeps O, B-a, B-b in proportion 0.4 : 0.1 : 0.2.
    log_probs = torch.tensor([0.6, 0.4, 0.7, 0.3, 0.4, 0.1, 0.2, 0.3], dtype=torch.float64).log()
    _, matrix = expand_transitions(log_probs, ["B-a", "B-b", "I-b", "O"])
    assert matrix[0].exp().tolist() == pytest.approx([1 / 7, 2 / 7, 0.0, 4 / 7])


def brute_force(emissions: torch.Tensor, start: torch.Tensor, transitions: torch.Tensor):
    length, n_tags = emissions.shape
    best, best_path = NEG, None
    for path in np.ndindex(*([n_tags] * length)):
        score = start[path[0]] + sum(emissions[i, t] for i, t in enumerate(path))
        score += sum(transitions[a, b] for a, b in itertools.pairwise(path))
        if score > best:
            best, best_path = float(score), list(path)
    return best_path


def test_viterbi_forbids_o_to_i_and_picks_the_best_legal_path():
    log_probs = abstract_log_probs(torch.zeros(len(ABSTRACT), dtype=torch.float64), 1.0)
    tags = ["B-a", "I-a", "O"]
    start, matrix = expand_transitions(log_probs, tags)
    # Word 2 looks most like I-a, but it follows a confident O: O -> I-a is forbidden, and
    # B-a (0.35) beats O (0.15) there.
    emissions = torch.tensor([[0.05, 0.05, 0.9], [0.35, 0.5, 0.15], [0.1, 0.8, 0.1]]).log()
    assert emissions.argmax(-1).tolist() == [2, 1, 1]  # what NNShot would tag: O I-a I-a
    path = viterbi(emissions.double(), start, matrix)
    assert [tags[i] for i in path] == ["O", "B-a", "I-a"]
    assert path == brute_force(emissions.double(), start, matrix)


def test_viterbi_equals_brute_force_on_random_scores():
    generator = torch.Generator().manual_seed(0)
    tags = ["B-a", "B-b", "I-a", "I-b", "O"]
    counts = torch.randint(0, 20, (len(ABSTRACT),), generator=generator).double()
    start, matrix = expand_transitions(abstract_log_probs(counts, 1.0), tags)
    for _ in range(20):
        emissions = torch.randn(4, len(tags), generator=generator, dtype=torch.float64)
        assert viterbi(emissions, start, matrix) == brute_force(emissions, start, matrix)


class WordTable:
    """Word vectors looked up per token (for exact StructShot predictions)."""

    name = "words"
    revision = "test"
    dim = 2
    table: ClassVar[dict[str, list[float]]] = {"x": [0, 0], "ent": [4, 0], "cont": [4, 3]}

    def encode_tokens(self, sentences):
        return [np.array([self.table[w] for w in s], dtype=np.float32) for s in sentences]


def test_structshot_counts_training_episodes_and_decodes_legal_paths():
    train = [sentence("1", "O B-a I-a O"), sentence("2", "B-b O O")]
    episode = Episode(("a", "b"), tuple(train[:1]), tuple(train[1:]), "f")
    method = StructShot(StructShotConfig(emission_scale=1.0), MethodContext(WordTable()))
    loss = method.train_step([episode], random.Random(0))
    assert counted(train) == {n: int(c) for n, c in zip(ABSTRACT, method.counts, strict=True) if c}
    # Before this batch the estimate was uniform per row: the loss is the mean of -log(1/2)
    # (4 transitions from start or O) and -log(1/4) (3 transitions from inside an entity).
    assert loss == pytest.approx((4 * math.log(2) + 3 * math.log(4)) / 7)
    support = [
        TaggedSentence("s", ("x", "ent", "cont", "x"), ("O", "B-a", "I-a", "O")),
    ]
    # "cont" starting a sentence is nearest to I-a, which cannot start one.
    tagger = method.fit(support, random.Random(0))
    assert tagger.predict([("cont", "x"), ("x", "ent", "cont")]) == [
        ["B-a", "O"],
        ["O", "B-a", "I-a"],
    ]
    restored = StructShot(StructShotConfig(), MethodContext(WordTable()))
    restored.load_checkpoint_state(method.checkpoint_state())
    assert torch.equal(restored.counts, method.counts)


def records_of(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def test_cli_counts_transitions_on_the_train_split_and_saves_them(tmp_path):
    out = tmp_path / "out"
    args = [
        "run", "--task", "crossner-music", "--method", "structshot-frozen,nnshot-frozen",
        "--encoder", "hashing-bow", "--n-way", "3", "--k-shot", "1", "--n-query", "1",
        "--episodes", "10", "--seeds", "1", "--no-progress", "--quiet", "--out", str(out),
        "--option", "meta_episodes=20", "--option", "train_n_way=2",
    ]  # fmt: skip
    assert main(args) == 0
    records = {r["method"]: r for r in records_of(out)}
    assert {r["status"] for r in records.values()} == {"ok"}
    training = records["structshot-frozen"]["training"]
    assert training["steps"] == 2 and training["train_spec"] == "2w-1s-1q"
    (saved,) = (out / "checkpoints").glob("*.pt")
    counts = load_checkpoint(saved)["state"]["counts"]
    assert counts.sum() > 0 and counts[ABSTRACT.index("O->O")] > counts[ABSTRACT.index("O->B")]


@pytest.fixture(scope="module")
def conll_to_music(shared_data, tmp_path_factory) -> dict[str, dict]:
    """NNShot and StructShot (transitions counted on 40 CoNLL-2003 training episodes) on the
    same 20 music test episodes, 5-way 1-shot, all-MiniLM-L6-v2."""
    out = tmp_path_factory.mktemp("structshot")
    args = [
        "run", "--task", "crossner-conll-to-music", "--data-dir", str(shared_data),
        "--method", "structshot-frozen,nnshot-frozen", "--n-way", "5", "--k-shot", "1",
        "--n-query", "1",
        "--episodes", "20", "--seeds", "1", "--no-progress", "--quiet", "--out", str(out),
        "--option", "meta_episodes=40",  # training episodes: the 4 CoNLL types
    ]  # fmt: skip
    assert main(args) == 0
    return {r["method"]: r for r in records_of(out)}


def test_structshot_on_crossner_music_from_conll_transitions(conll_to_music):
    structshot, nnshot = conll_to_music["structshot-frozen"], conll_to_music["nnshot-frozen"]
    assert structshot["status"] == nnshot["status"] == "ok"
    assert structshot["episodes_fingerprint"] == nnshot["episodes_fingerprint"]
    assert structshot["training"]["train_spec"] == "4w-1s-1q"
    assert structshot["mean"] >= FLOOR_STRUCTSHOT and nnshot["mean"] >= FLOOR_NNSHOT
