"""CLINC150: vendored copy equals the shared data, class splits, and data errors."""

from __future__ import annotations

import gzip
import shutil

import pytest

from benchmark.core.datasource import resolve_data_dir
from benchmark.core.errors import DataFormatError, DataNotFoundError
from benchmark.core.registry import TASKS
from tasks.intent import VENDORED


def load_clinc150(data_dir, split_id):
    return TASKS.get("clinc150").load(data_dir, split_id)


@pytest.fixture(scope="module")
def vendored():
    return load_clinc150(None, 1)


def test_vendored_copy_is_identical_to_shared_data(shared_data, vendored):
    shared = load_clinc150(shared_data, 1)
    assert shared.data_sha256 == vendored.data_sha256
    assert shared.splits == vendored.splits
    assert shared.data_path == shared_data / "clinc150"


def test_counts_and_splits(vendored):
    pools = {name: source.by_label for name, source in vendored.splits.items()}
    assert {name: len(pool) for name, pool in pools.items()} == {
        "train": 50,
        "valid": 50,
        "test": 50,
    }
    examples = [e for pool in pools.values() for members in pool.values() for e in members]
    # 22,500 in-scope utterances less 1 repeat and 8 copies of 4 texts with two intents each.
    assert len(examples) == 22_491
    assert len({e.text for e in examples}) == len(examples)
    assert min(len(v) for v in pools["test"].values()) == 149
    assert vendored.split_name == "protaugment-01"


@pytest.mark.parametrize("split_id", [1, 2, 3, 4, 5])
def test_every_protaugment_split_is_disjoint_and_complete(split_id):
    task = load_clinc150(None, split_id)
    labels = [label for split in task.splits.values() for label in split.labels()]
    assert len(labels) == len(set(labels)) == 150


def test_unknown_split_id_lists_the_valid_ones():
    with pytest.raises(Exception, match=r"class splits \[1, 2, 3, 4, 5\], not 9"):
        TASKS.get("clinc150").load(None, 9)


def copy_of_vendored(tmp_path):
    target = tmp_path / "clinc150"
    shutil.copytree(VENDORED / "clinc150", target)
    raw = gzip.decompress((target / "data_full.json.gz").read_bytes())
    (target / "data_full.json.gz").unlink()
    return target, raw


def test_corrupt_json_names_file_and_line(tmp_path):
    target, _ = copy_of_vendored(tmp_path)
    (target / "data_full.json").write_bytes(b'{"train": [\n["hello", "greet"],\n["broken"\n')
    with pytest.raises(DataFormatError, match=r"clinc150/data_full.json:4: invalid JSON"):
        load_clinc150(tmp_path, 1)


def test_malformed_entry_is_named(tmp_path):
    target, _ = copy_of_vendored(tmp_path)
    (target / "data_full.json").write_text(
        '{"train": [["a", "b"], ["only text"]], "val": [], "test": []}'
    )
    with pytest.raises(DataFormatError, match=r"entry train\[1\] should be \[text, intent\]"):
        load_clinc150(tmp_path, 1)


def test_split_file_with_unknown_label_names_file_and_line(tmp_path):
    target, raw = copy_of_vendored(tmp_path)
    (target / "data_full.json").write_bytes(raw)
    split_file = target / "fewshot_splits_protaugment" / "01" / "labels.test.txt"
    lines = split_file.read_text().splitlines()
    lines[2] = "no_such_intent"
    split_file.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=r"labels.test.txt:3: label 'no_such_intent'"):
        load_clinc150(tmp_path, 1)


def test_missing_data_says_where_it_looked_and_how_to_set_it(tmp_path):
    with pytest.raises(DataNotFoundError) as caught:
        load_clinc150(tmp_path, 1)
    message = str(caught.value)
    assert str(tmp_path / "clinc150" / "data_full.json") in message
    assert "--data-dir" in message and "FEWSHOT_BENCH_DATA" in message


def test_unvendored_data_without_a_data_dir_says_so():
    with pytest.raises(DataNotFoundError) as caught:
        TASKS.get("sst2").load(None, 1)
    message = str(caught.value)
    assert "data set 'sst' not found: it is not vendored and no data directory was given" in message
    assert "--data-dir" in message and "FEWSHOT_BENCH_DATA" in message


def test_missing_data_dir_names_its_origin(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_BENCH_DATA", str(tmp_path / "nope"))
    with pytest.raises(
        DataNotFoundError, match=r"nope \(from \$FEWSHOT_BENCH_DATA\) does not exist"
    ):
        resolve_data_dir(None)
    with pytest.raises(DataNotFoundError, match=r"gone \(from --data-dir\) does not exist"):
        resolve_data_dir(tmp_path / "gone")
    monkeypatch.delenv("FEWSHOT_BENCH_DATA")
    assert resolve_data_dir(None) is None
