"""Matching, relation and siamese networks: exact mechanics on hand-made embeddings, end-to-end
meta-training through the CLI, and floors on real data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from baselines.metric_learning import (
    MatchingConfig,
    MatchingNetwork,
    RelationConfig,
    RelationNetwork,
    SiameseConfig,
    SiameseNetwork,
    contrastive_loss,
)
from benchmark.cli import main
from benchmark.core.methods import MethodContext
from benchmark.core.types import Episode, Example

from helpers import TableEncoder

TABLE = {
    "a1": [1.0, 0.0],
    "a2": [0.8, 0.6],
    "b1": [0.0, 1.0],
    "q": [0.6, 0.8],
}
SUPPORT = [Example("1", "a1", "a"), Example("2", "a2", "a"), Example("3", "b1", "b")]
NO_ADAPTER = {"adapter_hidden": 0, "meta_episodes": 0}
METHODS = ("matching-net", "relation-net", "siamese-net")


def context() -> MethodContext:
    return MethodContext(TableEncoder(TABLE))


def test_matching_network_sums_attention_over_each_class():
    net = MatchingNetwork(MatchingConfig(**NO_ADAPTER), context())
    _, support = net.embed_support(SUPPORT)
    log_p = net.log_probabilities(support, ["q"])
    # cosines of q with a1, a2, b1 are 0.6, 0.96, 0.8; attention is softmax(10 * cos)
    weights = torch.softmax(10 * torch.tensor([0.6, 0.96, 0.8]), dim=0)
    expected = torch.stack([weights[:2].sum(), weights[2]]).log()
    assert torch.allclose(log_p[0], expected, atol=1e-5)
    assert net.fit(SUPPORT, random.Random(0)).predict(["q"]) == ["a"]


def test_full_context_embeddings_read_the_whole_support_set():
    plain = MatchingNetwork(MatchingConfig(**NO_ADAPTER), context())
    fce = MatchingNetwork(MatchingConfig(**NO_ADAPTER, full_context=True), context())
    _, keys = fce.embed_support(SUPPORT)
    _, keys_without_b = fce.embed_support(SUPPORT[:2])
    assert keys.keys.shape == (3, 2)
    # g(x_i, S) depends on the other support examples: dropping b1 changes a1's key
    assert not torch.allclose(keys.keys[0], keys_without_b.keys[0])
    assert not torch.allclose(
        plain.log_probabilities(plain.embed_support(SUPPORT)[1], ["q"]),
        fce.log_probabilities(keys, ["q"]),
    )


def test_relation_network_class_features_are_sums_or_means():
    summed = RelationNetwork(RelationConfig(**NO_ADAPTER), context())
    names, classes = summed.class_features(SUPPORT)
    assert names == ["a", "b"]
    assert torch.allclose(classes, torch.tensor([[1.8, 0.6], [0.0, 1.0]]))
    averaged = RelationNetwork(RelationConfig(**NO_ADAPTER, class_feature="mean"), context())
    assert torch.allclose(averaged.class_features(SUPPORT)[1][0], torch.tensor([0.9, 0.3]))
    scores = summed.scores(classes, ["q", "a1"])
    assert scores.shape == (2, 2) and bool(((scores > 0) & (scores < 1)).all())


def test_relation_network_with_the_paper_pair_input_is_the_concatenation():
    net = RelationNetwork(RelationConfig(**NO_ADAPTER, pair_input="concat"), context())
    assert net.relation[0].in_features == 4  # [q, c] of two 2-d features
    default = RelationNetwork(RelationConfig(**NO_ADAPTER), context())
    assert default.relation[0].in_features == 8  # [q, c, q * c, |q - c|]


def test_contrastive_loss_by_hand():
    embedded = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.5]])
    labels = torch.tensor([0, 0, 1])
    # positive pair (0, 1): d^2 = 25; negative pairs (0, 2): d = 0.5, (1, 2): d = sqrt(9 + 12.25)
    negative = [(1.0 - 0.5) ** 2, max(0.0, 1.0 - (9 + 12.25) ** 0.5) ** 2]
    expected = (25.0 + sum(negative) / 2) / 2
    assert float(contrastive_loss(embedded, labels, margin=1.0)) == pytest.approx(expected)


def test_a_siamese_training_step_pulls_same_class_examples_together():
    table = {
        "a1": [1.0, 0.0, 0.2],
        "a2": [0.0, 1.0, 0.2],
        "b1": [0.5, 0.5, -1.0],
        "b2": [0.4, 0.6, -1.0],
    }
    net = SiameseNetwork(
        SiameseConfig(adapter_hidden=8, meta_lr=0.05, margin=2.0),
        MethodContext(TableEncoder(table)),
    )
    examples = [Example(t, t, t[0]) for t in ("a1", "a2", "b1", "b2")]
    episode = Episode(("a", "b"), tuple(examples[::2]), tuple(examples[1::2]), "test")
    losses = [net.train_step([episode], random.Random(0)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]


# A fast, real meta-training budget on the vendored CLINC150 with the lexical encoder.
TINY = [
    "--task", "clinc150", "--encoder", "hashing-bow", "--n-way", "5", "--k-shot", "1",
    "--n-query", "5", "--episodes", "10", "--seeds", "1", "--no-progress", "--quiet",
    "--option", "meta_episodes=8", "--option", "meta_batch=2", "--option", "valid_every=2",
    "--option", "valid_episodes=4", "--option", "adapter_hidden=16",
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("matching-net", []),
        # full-context LSTMs are dim x dim: MiniLM's 384, not the lexical encoder's 4096
        ("matching-net", ["--option", "full_context=true", "--encoder", "all-MiniLM-L6-v2"]),
        ("relation-net", ["--option", "relation_hidden=32"]),
        ("siamese-net", ["--option", "margin=0.5"]),
    ],
)
def test_each_method_meta_trains_and_runs_from_the_cli(tmp_path: Path, method, options):
    out = tmp_path / "out"
    assert main(["run", "--method", method, *TINY, *options, "--out", str(out)]) == 0
    (record,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert record["status"] == "ok", record["error"]
    assert record["training"]["steps"] == 4 and len(record["per_episode"]) == 10
    assert record["method_config"]["adapter_hidden"] == 16


def test_bad_options_name_the_option(capsys):
    assert main(["run", "--method", "siamese-net", *TINY, "--option", "margin=-1"]) == 2
    assert "margin=-1.0: expected > 0" in capsys.readouterr().err
    assert main(["run", "--method", "relation-net", *TINY, "--option", "pair_input=sum"]) == 2
    assert "expected one of 'interactions', 'concat'" in capsys.readouterr().err


def test_real_data_floors_with_minilm(tmp_path: Path):
    """CLINC150 5-way 1-shot, packaged MiniLM, 60 meta-training episodes, 60 test episodes.

    Measured (seed 0): matching 94.3, relation 90.7, siamese 94.7 (chance 20)."""
    out = tmp_path / "out"
    args = [
        "run", "--task", "clinc150", "--method", ",".join(METHODS), "--n-way", "5",
        "--k-shot", "1", "--n-query", "5", "--episodes", "60", "--seeds", "1", "--out", str(out),
        "--no-progress", "--quiet", "--option", "meta_episodes=60", "--option", "valid_every=5",
        "--option", "valid_episodes=10",
    ]  # fmt: skip
    assert main(args) == 0
    records = {r["method"]: r for r in (json.loads(p.read_text()) for p in out.glob("*.json"))}
    floors = {"matching-net": 0.88, "relation-net": 0.80, "siamese-net": 0.88}
    for method, floor in floors.items():
        assert records[method]["status"] == "ok", records[method]["error"]
        assert records[method]["mean"] >= floor, (method, records[method]["mean"])
