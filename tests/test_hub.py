"""Hub loaders (`--source hub`), run against a fake `datasets.load_dataset`: no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from benchmark.core.errors import BenchmarkError, DataNotFoundError
from benchmark.core.pools import ClassPool, SplitPool
from benchmark.core.registry import TASKS
from benchmark.core.tagging import TaggedPool
from benchmark.core.types import Example
from tasks.hub import HUB_LOADERS
from tasks.hub.ner import crossner_tag
from tasks.hub.reading import PARQUET_EXPORT
from tasks.intent import VENDORED

REPO = Path(__file__).resolve().parent.parent
PROTAUGMENT_01 = VENDORED / "clinc150" / "fewshot_splits_protaugment" / "01"
CLINC_INTENTS = sorted(
    line
    for name in ("train", "valid", "test")
    for line in (PROTAUGMENT_01 / f"labels.{name}.txt").read_text().split()
)


def text_dataset(
    rows: list[tuple[str, str]], label_names: list[str] | None = None, column: str = "label"
) -> Dataset:
    """(text, label) rows: a ClassLabel `column` when names are given, else SetFit's layout
    (an integer `label` and its name in `label_text`)."""
    texts = [text for text, _ in rows]
    if label_names is None:
        names = sorted({label for _, label in rows})
        return Dataset.from_dict(
            {
                "text": texts,
                "label": [names.index(label) for _, label in rows],
                "label_text": [label for _, label in rows],
            }
        )
    features = Features({"text": Value("string"), column: ClassLabel(names=label_names)})
    labels = [label_names.index(label) for _, label in rows]
    return Dataset.from_dict({"text": texts, column: labels}, features=features)


class FakeHub:
    """Stands in for `datasets.load_dataset`: serves registered tables and records each call."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, str | None], dict[str, Dataset]] = {}
        self.calls: list[dict] = []

    def add(self, dataset_id: str, config: str | None, **splits: Dataset) -> None:
        self.tables[(dataset_id, config)] = splits

    def __call__(self, path: str, name: str | None = None, **options) -> DatasetDict:
        self.calls.append({"path": path, "name": name, **options})
        files = options.get("data_files")
        if files is None:
            return DatasetDict(self.tables[(path, name)])
        folder = next(iter(files.values())).split("/")[0]
        table = self.tables[(path, folder)]
        return DatasetDict({split: table[split] for split in files})


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(datasets, "load_dataset", fake)
    return fake


def add_clinc(hub: FakeHub) -> None:
    names = [*CLINC_INTENTS[:42], "oos", *CLINC_INTENTS[42:]]
    parts = {"train": 2, "validation": 1, "test": 1}
    splits = {
        split: text_dataset(
            [(f"{split} {i} {intent}", intent) for intent in CLINC_INTENTS for i in range(n)]
            + [(f"{split} out of scope {i}", "oos") for i in range(3)],
            names,
            column="intent",
        )
        for split, n in parts.items()
    }
    hub.add("clinc/clinc_oos", "plus", **splits)


def test_loaders_cover_registered_tasks():
    required = {"clinc150", "banking77", "sst2", "sst5", "20newsgroups", "fewrel-wiki"}
    required |= {f"crossner-{d}" for d in ("conll2003", "politics", "science", "music", "ai")}
    assert required <= set(HUB_LOADERS)
    assert set(HUB_LOADERS) <= set(TASKS.names())


def test_importing_the_module_does_not_import_datasets():
    code = "import sys, tasks.hub; assert 'datasets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_clinc150_drops_oos_and_uses_protaugment_split(hub):
    add_clinc(hub)
    task = HUB_LOADERS["clinc150"](1, None)
    assert task.card is TASKS.get("clinc150").card
    assert {name: len(split.labels()) for name, split in task.splits.items()} == {
        "train": 50,
        "valid": 50,
        "test": 50,
    }
    labels = {label for split in task.splits.values() for label in split.labels()}
    assert "oos" not in labels and len(labels) == 150
    assert task.split_name == "hub:protaugment-01"
    assert any("dropped 9 out-of-scope" in note for note in task.notes)
    assert any("clinc/clinc_oos" in note and "plus" in note for note in task.notes)
    assert isinstance(task.splits["test"], ClassPool)
    examples = {
        e.uid: e for pool in task.splits.values() for v in pool.by_label.values() for e in v
    }
    assert len(examples) == 150 * 4
    intent = CLINC_INTENTS[0]
    assert examples["validation-00000"] == Example(
        "validation-00000", f"validation 0 {intent}", intent
    )
    local = TASKS.get("clinc150").load(None, 1)
    assert local.split_name == "protaugment-01"
    assert len(task.data_sha256) == 64 and task.data_sha256 != local.data_sha256
    (call,) = hub.calls
    assert (call["path"], call["name"]) == ("clinc/clinc_oos", "plus")


def test_clinc150_domain_shift_targets_one_domain(hub):
    add_clinc(hub)
    task = HUB_LOADERS["clinc150-domain-shift"](2, None)
    assert task.split_name == "hub:target-banking"
    assert len(task.splits["train"].labels()) == 135
    assert "balance" in task.splits["test"].labels()
    assert task.card.target_domain == "CLINC150 domain banking"


def write_split_files(root: Path, labels: dict[str, list[str]]) -> None:
    folder = root / "banking77" / "fewshot_splits_protaugment" / "01"
    folder.mkdir(parents=True)
    for split, names in labels.items():
        (folder / f"labels.{split}.txt").write_text("\n".join(names) + "\n")


def test_banking77_reads_the_parquet_export_and_local_split_files(hub, tmp_path):
    intents = ["activate_my_card", "age_limit", "atm_support", "card_arrival", "pin_blocked"]
    rows = {
        split: text_dataset([(f"{split} {i} {x}", x) for x in intents for i in range(2)], intents)
        for split in ("train", "test")
    }
    hub.add("PolyAI/banking77", "default", **rows)
    write_split_files(
        tmp_path,
        {"train": intents[:2], "valid": intents[2:3], "test": intents[3:]},
    )
    task = HUB_LOADERS["banking77"](1, tmp_path)
    assert task.splits["test"].labels() == ("card_arrival", "pin_blocked")
    assert task.splits["train"].size() == 8
    (call,) = hub.calls
    assert call["revision"] == PARQUET_EXPORT
    assert call["data_files"] == {
        "train": "default/train/*.parquet",
        "test": "default/test/*.parquet",
    }


def test_integer_labels_without_class_names_are_an_error(hub, tmp_path):
    rows = Dataset.from_dict({"text": ["hi"], "label": [3]})
    hub.add("PolyAI/banking77", "default", train=rows, test=rows)
    write_split_files(tmp_path, {"train": ["a"], "valid": ["b"], "test": ["c"]})
    with pytest.raises(BenchmarkError, match="neither a ClassLabel nor strings"):
        HUB_LOADERS["banking77"](1, tmp_path)


def test_banking77_without_split_files_asks_for_the_data_dir(hub):
    with pytest.raises(DataNotFoundError, match="--data-dir"):
        HUB_LOADERS["banking77"](1, None)
    assert hub.calls == []


@pytest.mark.parametrize(
    ("name", "labels"),
    [("sst2", ["negative", "positive"]), ("sst5", ["very negative", "neutral", "positive"])],
)
def test_sst_support_from_train_queries_from_validation_and_test(hub, name, labels):
    train = [(f"train {i} {label}", label) for label in labels for i in range(3)]
    validation = [*[(f"valid {label}", label) for label in labels], train[0]]
    test = [(f"test {label}", label) for label in labels]
    hub.add(
        f"SetFit/{name}",
        None,
        train=text_dataset(train),
        validation=text_dataset(validation),
        test=text_dataset(test),
    )
    task = HUB_LOADERS[name](1, None)
    assert isinstance(task.splits["train"], ClassPool)
    valid = task.splits["valid"]
    assert isinstance(valid, SplitPool)
    assert valid.labels() == tuple(sorted(labels))
    assert sum(len(v) for v in valid.query.values()) == len(labels)
    assert any("dropped 1 validation, 0 test" in note for note in task.notes)
    assert task.split_name.startswith("hub:")


def test_sst_unknown_label_text_is_named(hub):
    rows = text_dataset([("fine", "Positive")])
    hub.add("SetFit/sst2", None, train=rows, validation=rows, test=rows)
    with pytest.raises(BenchmarkError, match=r"SetFit/sst2.*label_text values \['Positive'\]"):
        HUB_LOADERS["sst2"](1, None)


def test_20newsgroups_split_by_hierarchy(hub):
    groups = ["sci.space", "rec.autos", "comp.graphics", "talk.politics.guns", "misc.forsale"]
    train = [(f"about\n\n {g}  post", g) for g in groups] + [("  ", "sci.space")]
    test = [(f"more on {g}", g) for g in groups]
    hub.add("SetFit/20_newsgroups", None, train=text_dataset(train), test=text_dataset(test))
    task = HUB_LOADERS["20newsgroups"](1, None)
    assert task.splits["train"].labels() == ("rec.autos", "sci.space")
    assert task.splits["valid"].labels() == ("comp.graphics",)
    assert task.splits["test"].labels() == ("misc.forsale", "talk.politics.guns")
    texts = {e.text for pool in task.splits.values() for v in pool.by_label.values() for e in v}
    assert "about sci.space post" in texts
    assert any("dropped 1 post(s) left empty" in note for note in task.notes)


ENTITY = {"text": Value("string"), "type": Value("string"), "indices": List(List(Value("int64")))}
FEWREL_FEATURES = Features(
    {
        "relation": Value("string"),
        "tokens": List(Value("string")),
        "head": ENTITY,
        "tail": ENTITY,
        "names": List(Value("string")),
    }
)


def fewrel_rows(relations: list[str]) -> Dataset:
    rows = []
    for relation in relations:
        for i in range(2):
            rows.append(
                {
                    "relation": relation,
                    "tokens": ["Paris", "is", "in", "France", str(i), relation],
                    "head": {"text": "Paris", "type": "Q90", "indices": [[0]]},
                    "tail": {"text": "France", "type": "Q142", "indices": [[3]]},
                    "names": [relation, "a relation"],
                }
            )
    return Dataset.from_list(rows, features=FEWREL_FEATURES)


def test_fewrel_wiki_marks_entities(hub):
    hub.add("thunlp/few_rel", "default", val_wiki=fewrel_rows(["P17", "P131"]))
    task = HUB_LOADERS["fewrel-wiki"](1, None)
    pool = task.splits["test"]
    assert pool.labels() == ("P131", "P17")
    example = pool.by_label["P17"][1]
    assert example.uid == "P17-0001"
    assert example.text == "<e1> Paris </e1> is in <e2> France </e2> 1 P17"
    assert [example.text[start:end] for _, start, end in example.spans] == ["Paris", "France"]
    assert task.split_name == "hub:val_wiki-all"
    (call,) = hub.calls
    assert call["data_files"] == {"val_wiki": "default/val_wiki/*.parquet"}
    assert call["revision"] == PARQUET_EXPORT


def test_fewrel_shift_uses_wiki_as_source(hub):
    nyt = fewrel_rows(["/location/location/contains"])
    hub.add("thunlp/few_rel", "default", val_wiki=fewrel_rows(["P17"]), val_nyt=nyt)
    task = HUB_LOADERS["fewrel-wiki-to-nyt"](1, None)
    assert task.splits["train"].labels() == ("P17",)
    assert task.splits["test"].labels() == ("/location/location/contains",)


def test_fewrel_shift_leaves_shared_relations_out_of_the_source(hub):
    shared = fewrel_rows(["P17"])
    hub.add("thunlp/few_rel", "default", val_wiki=fewrel_rows(["P17", "P31"]), val_nyt=shared)
    task = HUB_LOADERS["fewrel-wiki-to-nyt"](1, None)
    assert task.splits["train"].labels() == ("P31",)
    assert task.splits["test"].labels() == ("P17",)
    assert "left the 1 source classes that are also target classes out: ['P17']" in task.notes


def test_fewrel_missing_columns_are_listed(hub):
    hub.add("thunlp/few_rel", "default", val_wiki=Dataset.from_dict({"relation": ["P17"]}))
    with pytest.raises(BenchmarkError, match=r"thunlp/few_rel.*\['tokens', 'head', 'tail'\]"):
        HUB_LOADERS["fewrel-wiki"](1, None)


def ner_dataset(sentences: list[list[tuple[str, str]]], names: list[str]) -> Dataset:
    features = Features(
        {
            "id": Value("string"),
            "tokens": List(Value("string")),
            "ner_tags": List(ClassLabel(names=names)),
        }
    )
    return Dataset.from_dict(
        {
            "id": [str(i) for i in range(len(sentences))],
            "tokens": [[token for token, _ in s] for s in sentences],
            "ner_tags": [[names.index(tag) for _, tag in s] for s in sentences],
        },
        features=features,
    )


MUSIC_TAGS = ["O", "B-musicalartist", "I-musicalartist", "B-song", "I-song", "B-person"]


def add_crossner(hub: FakeHub, domain: str, names: list[str], sentence: list[tuple[str, str]]):
    docstart = [("-DOCSTART-", "O")]
    splits = {
        split: ner_dataset([docstart, sentence, sentence, [(split, "O")]], names)
        for split in ("train", "validation", "test")
    }
    hub.add("DFKI-SLT/cross_ner", domain, **splits)


def test_crossner_integer_tags_become_bio_strings(hub):
    sentence = [("Bob", "B-musicalartist"), ("Dylan", "I-musicalartist"), ("sang", "O")]
    add_crossner(hub, "music", MUSIC_TAGS, sentence)
    task = HUB_LOADERS["crossner-music"](1, None)
    assert set(task.splits) == {"train", "valid", "test"}
    pool = task.splits["valid"]
    assert isinstance(pool, TaggedPool)
    assert pool.size() == 2  # -DOCSTART- dropped, the repeated sentence kept once
    first = pool.sentences[0]
    assert first.uid == "music-validation-000001"
    assert first.tokens == ("Bob", "Dylan", "sang")
    assert first.tags == ("B-musicalartist", "I-musicalartist", "O")
    assert task.split_name == "hub:crossner-files"
    assert hub.calls[0]["data_files"]["validation"] == "music/validation/*.parquet"


def test_crossner_conll_short_tag_names_are_mapped(hub):
    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]
    add_crossner(hub, "conll2003", names, [("Ann", "B-PER"), ("of", "O"), ("IBM", "B-ORG")])
    task = HUB_LOADERS["crossner-conll2003"](1, None)
    assert task.splits["train"].labels() == ("organisation", "person")
    assert crossner_tag("I-Organization") == "I-organisation"


def test_crossner_shift_trains_on_conll2003(hub):
    add_crossner(hub, "conll2003", ["O", "B-person"], [("Ann", "B-person")])
    add_crossner(hub, "music", MUSIC_TAGS, [("Hey", "B-song"), ("Jude", "I-song")])
    task = HUB_LOADERS["crossner-conll-to-music"](1, None)
    assert task.splits["train"].labels() == ("person",)
    assert task.splits["test"].labels() == ("song",)
    assert task.split_name == "hub:conll2003-to-music"


def test_crossner_unknown_type_and_bad_bio_are_errors(hub):
    add_crossner(hub, "music", ["O", "B-spaceship"], [("Apollo", "B-spaceship")])
    with pytest.raises(BenchmarkError, match=r"entity types \['spaceship'\]"):
        HUB_LOADERS["crossner-music"](1, None)
    add_crossner(hub, "music", MUSIC_TAGS, [("Jude", "I-song")])
    with pytest.raises(BenchmarkError, match="invalid BIO sequence"):
        HUB_LOADERS["crossner-music"](1, None)


def test_load_failure_says_the_hub_is_unreachable(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'SetFit/sst5' on the Hub (ConnectError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(BenchmarkError) as caught:
        HUB_LOADERS["sst5"](1, None)
    message = str(caught.value)
    assert "SetFit/sst5" in message
    assert "hub could not be reached" in message
    assert "--data-dir" in message
    assert isinstance(caught.value.__cause__, ConnectionError)


def test_wrong_split_id_fails_before_loading(hub):
    with pytest.raises(BenchmarkError, match=r"class splits \[1, 2, 3, 4, 5\], not 7"):
        HUB_LOADERS["clinc150"](7, None)
    with pytest.raises(BenchmarkError, match="one split"):
        HUB_LOADERS["fewrel-wiki"](2, None)
    assert hub.calls == []
