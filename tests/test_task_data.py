"""Every task loads from ../shared/data with the counts of its SOURCE.md and its task card."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from benchmark.core.registry import TASKS
from tasks.common import parallel_files
from tasks.files import read_conll, read_jsonl_examples
from tasks.intent import DATASETS
from tasks.relation import read_fewrel
from tasks.sentiment import SST2_NAMES, SST5_NAMES, read_arsc_file, read_sst_file


@pytest.mark.parametrize("name", TASKS.names())
def test_loaded_counts_match_the_task_card(shared_data, name):
    entry = TASKS.get(name)
    task = entry.load(shared_data, 1)
    loaded = {split: (len(source.labels()), source.size()) for split, source in task.splits.items()}
    assert loaded == dict(entry.card.counts)
    # A loaded domain-shift card may name the domains its split chose; everything else is the card.
    generic = dataclasses.replace(
        task.card, source_domain=entry.card.source_domain, target_domain=entry.card.target_domain
    )
    assert generic == entry.card


@pytest.mark.parametrize(
    ("dataset", "parts", "classes"),
    [
        ("clinc150", {"train": 15_000, "val": 3_000, "test": 4_500}, 150),
        ("banking77", {"train": 10_003, "test": 3_080}, 77),
        ("hwu64", {"train": 8_954, "valid": 1_076, "test": 1_076}, 64),
        ("liu54", {"full": 25_478}, 54),
    ],
)
def test_intent_sources_have_the_stated_counts(shared_data, dataset, parts, classes):
    read, _ = DATASETS[dataset].read(shared_data / dataset)
    assert {part: len(examples) for part, examples in read.items()} == parts
    assert len({e.label for examples in read.values() for e in examples}) == classes


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("clinc150", {1: (50, 50, 50), 5: (50, 50, 50)}),
        ("banking77", {1: (25, 25, 27), 3: (25, 25, 27)}),
        ("hwu64", {1: (16, 23, 25)}),
        ("liu54", {1: (18, 18, 18), 2: (18, 18, 18), 4: (18, 18, 18)}),
    ],
)
def test_protaugment_class_splits(shared_data, name, sizes):
    for split_id, expected in sizes.items():
        task = TASKS.get(name).load(shared_data, split_id)
        labels = [set(task.split(s).labels()) for s in ("train", "valid", "test")]
        assert tuple(len(x) for x in labels) == expected
        assert not (labels[0] & labels[1] or labels[0] & labels[2] or labels[1] & labels[2])


def test_dnnc_subsets_have_the_stated_counts(shared_data):
    for dataset, classes, counts in (
        ("clinc150", 150, {5: 750, 10: 1_500}),
        ("banking77", 77, {5: 385, 10: 770}),
        ("hwu64", 64, {5: 320, 10: 640}),
    ):
        for shots, lines in counts.items():
            folder = shared_data / dataset / "fewshot_subsets_dnnc" / f"train_{shots}"
            examples = parallel_files(folder / "seq.in", folder / "label", "x")
            assert len(examples) == lines
            assert set(Counter(e.label for e in examples).values()) == {shots}
            assert len({e.label for e in examples}) == classes


def test_topic_sources_have_the_stated_counts(shared_data):
    huffpost = read_jsonl_examples(shared_data / "huffpost/huffpost.json", "raw", "label")
    assert len(huffpost) == 36_900
    assert set(Counter(e.label for e in huffpost).values()) == {900}
    assert len({e.label for e in huffpost}) == 41
    reuters = read_jsonl_examples(shared_data / "reuters_fewshot/reuters.json", "raw", "label")
    assert len(reuters) == 620 and set(Counter(e.label for e in reuters).values()) == {20}
    for part, count in (("train", 11_314), ("test", 7_532)):
        posts = read_jsonl_examples(shared_data / f"20newsgroups/20news-bydate-{part}.jsonl")
        assert len(posts) == count and len({e.label for e in posts}) == 20


def test_bao_class_splits(shared_data):
    for name, expected in (
        ("huffpost", (20, 5, 16)),
        ("reuters", (15, 5, 11)),
        ("20newsgroups", (8, 5, 7)),
    ):
        task = TASKS.get(name).load(shared_data, 1)
        assert tuple(len(task.split(s).labels()) for s in ("train", "valid", "test")) == expected


def test_sst_has_the_stated_counts(shared_data):
    for part, five, two in (("train", 8_544, 6_920), ("dev", 1_101, 872), ("test", 2_210, 1_821)):
        path = shared_data / f"sst/sst_{part}.txt"
        assert len(read_sst_file(path, SST5_NAMES)) == five
        assert len(read_sst_file(path, SST2_NAMES)) == two
    train = Counter(e.label for e in read_sst_file(shared_data / "sst/sst_train.txt", SST5_NAMES))
    assert train == {
        "very negative": 1_092,
        "negative": 2_218,
        "neutral": 1_624,
        "positive": 2_322,
        "very positive": 1_288,
    }


def test_arsc_has_the_stated_counts(shared_data):
    folder = shared_data / "amazon_arsc/Amazon_few_shot"
    files = [f for f in folder.iterdir() if f.suffix in (".train", ".dev", ".test")]
    assert len(files) == 219
    lines = [e for f in files for e in read_arsc_file(f, f.name)]
    assert len(lines) == 98_328
    assert Counter(e.label for e in lines) == {"1": 75_582, "-1": 22_746}
    task = TASKS.get("arsc").load(shared_data, 1)
    episodes = task.split("test").fixed_episodes
    assert len(episodes) == 12
    assert all(
        len(e.support) == 10 and Counter(x.label for x in e.support) == {"1": 5, "-1": 5}
        for e in episodes
    )
    assert len(task.split("train").groups) == 57


@pytest.mark.parametrize(
    ("file", "relations", "instances"),
    [
        ("val_wiki", 16, 11_200),
        ("val_pubmed", 10, 1_000),
        ("val_nyt", 25, 2_500),
        ("val_semeval", 17, 8_851),
    ],
)
def test_fewrel_has_the_stated_counts(shared_data, file, relations, instances):
    examples, _ = read_fewrel(shared_data / f"fewrel/{file}.json")
    assert len(examples) == instances and len({e.label for e in examples}) == relations
    for example in examples[:: max(1, instances // 50)]:
        spans = dict((name, (start, end)) for name, start, end in example.spans)
        assert set(spans) == {"head", "tail"}
        assert "<e1>" in example.text and "</e2>" in example.text


@pytest.mark.parametrize(
    ("domain", "sentences", "train_tokens", "types"),
    [
        ("conll2003", (14_041, 3_250, 3_453), 203_621, 4),
        ("politics", (200, 541, 651), 8_384, 9),
        ("science", (200, 450, 543), 7_100, 17),
        ("music", (100, 380, 465), 3_909, 13),
        ("literature", (100, 400, 416), 3_782, 12),
        ("ai", (100, 350, 431), 3_782, 14),
    ],
)
def test_crossner_has_the_stated_counts(shared_data, domain, sentences, train_tokens, types):
    parts = [
        read_conll(shared_data / f"crossner/{domain}/{f}.txt") for f in ("train", "dev", "test")
    ]
    assert tuple(len(p) for p in parts) == sentences
    assert sum(len(s.tokens) for s in parts[0]) == train_tokens
    assert len({t for p in parts for s in p for t in s.types}) == types


# Sentiment splits are other domains with the same two labels, and tagging splits share entity
# types, by design; every other task's splits hold disjoint classes.
CLASS_SPLIT_TASKS = [
    name
    for name in TASKS.names()
    if TASKS.get(name).card.family != "sentiment" and TASKS.get(name).card.metric == "accuracy"
]


@pytest.mark.parametrize("name", CLASS_SPLIT_TASKS)
def test_no_class_is_both_trained_on_and_tested(shared_data, name):
    """Meta-training never sees a test class."""
    task = TASKS.get(name).load(shared_data, 1)
    labels = {split: set(source.labels()) for split, source in task.splits.items()}
    for split in ("train", "valid"):
        assert not labels.get(split, set()) & labels["test"], (split, name)
