"""One cell of every task family on real data, with the packaged encoder, against measured floors.

Floors sit about four CI half-widths below what we measured with the same settings (2 seeds x 100
episodes; two disjoint seed pairs gave the numbers in the comments), and far above chance, so a
broken loader, sampler, encoder or method fails them while seed noise does not.
"""

from __future__ import annotations

import pytest

from benchmark.core.types import EpisodeSpec
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.sweep import run_sweep

CELLS = [
    # family, task, method, spec, floor, chance; measured mean (seeds 0,1 / 5,6), +/- CI
    ("topic", "huffpost", "protonet", EpisodeSpec(5, 5, 15), 0.62, 0.2),  # 0.670 / 0.665 +/- 0.011
    ("sentiment", "sst2", "protonet", EpisodeSpec(2, 5, 15), 0.55, 0.5),  # 0.615 / 0.602 +/- 0.014
    ("relation", "fewrel-pubmed", "protonet", EpisodeSpec(5, 5, 15), 0.62, 0.2),  # 0.686 / 0.672
    (
        "ner",
        "crossner-music",
        "ner-protonet-frozen",
        EpisodeSpec(5, 5, 5),
        0.09,
        0.0,
    ),  # 0.128 / 0.125
    (
        "domain shift",
        "clinc150-domain-shift",
        "protonet",
        EpisodeSpec(5, 5, 15),
        0.93,
        0.2,
    ),  # 0.970 / 0.962
    (
        "domain shift",
        "crossner-conll-to-music",
        "ner-protonet-frozen",
        EpisodeSpec(5, 5, 5),
        0.09,
        0.0,
    ),
]


@pytest.fixture(scope="module")
def records(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("families")
    found = {}
    for _, task, method, spec, _, _ in CELLS:
        sweep = Sweep((task,), (method,), (spec,), episodes=100, seeds=(0, 1))
        options = RunOptions(out=out, data_dir=shared_data, device="cpu", progress=False)
        (record,) = run_sweep(sweep, options).records
        found[task] = record
    return found


@pytest.mark.parametrize(("family", "task", "method", "spec", "floor", "chance"), CELLS)
def test_family_cell_beats_its_floor(records, family, task, method, spec, floor, chance):
    record = records[task]
    assert record["status"] == "ok", record["error"]
    assert record["family"] == family
    assert record["n_episodes"] == 200
    assert record["mean"] >= floor > chance


def test_domain_shift_records_name_source_and_target(records):
    for task in ("clinc150-domain-shift", "crossner-conll-to-music"):
        assert records[task]["source_domain"] and records[task]["target_domain"]
    assert records["clinc150-domain-shift"]["target_domain"] == "CLINC150 domain auto_and_commute"
    assert "other than auto_and_commute" in records["clinc150-domain-shift"]["source_domain"]
    assert records["huffpost"]["source_domain"] is None


def test_ner_record_uses_entity_f1(records):
    assert records["crossner-music"]["metric"] == "entity-f1"
    # Frozen methods do not read the source domain, so the target-only task gives the same scores.
    assert (
        records["crossner-conll-to-music"]["per_episode"]
        == records["crossner-music"]["per_episode"]
    )


def test_ner_record_holds_span_errors_consistent_with_its_per_type_counts(records):
    for task in ("crossner-music", "crossner-conll-to-music"):
        record = records[task]
        errors, types = record["span_errors"], record["per_class"].values()
        assert len(errors["span_f1"]["per_episode"]) == 200
        assert errors["span_f1"]["mean"] > record["mean"]  # some entities are found, mistyped
        predicted = errors["correct"] + errors["wrong_type"] + errors["false_span"]
        assert predicted == sum(t["predicted"] for t in types)
        assert errors["correct"] + errors["wrong_type"] + errors["missed_span"] == sum(
            t["support"] for t in types
        )
        assert 0 < errors["type_accuracy"] < 1
        assert 0 < errors["left_out"] < errors["false_span"]  # 5 of music's 13 types an episode
    assert records["huffpost"]["span_errors"] is None
