"""A user's own data in JSON lines, CSV, TSV and CoNLL: runs with flags only; errors say where."""

from __future__ import annotations

import csv
import gzip
import json
import re
import subprocess
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.core.registry import TASKS
from tasks.files import load_file_task, read_conll

FAST = ("--encoder", "hashing-bow", "--episodes", "10", "--seeds", "1", "--no-progress")


def run(capsys, tmp_path: Path, *argv: str) -> tuple[int, list[dict], str]:
    out = tmp_path / "runs"
    code = main(["run", *argv, *FAST, "--out", str(out)])
    err = capsys.readouterr().err
    records = (
        [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))] if out.is_dir() else []
    )
    return code, records, err


@pytest.fixture(scope="module")
def banking_rows(shared_data) -> list[dict]:
    """40 test utterances of each of 20 BANKING77 intents, as a stand-in for a user's data."""
    with (shared_data / "banking77/test.csv").open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    intents = sorted({r["category"] for r in rows})[:20]
    return [r for r in rows if r["category"] in intents]


def test_jsonl_with_custom_keys(capsys, tmp_path, banking_rows):
    path = tmp_path / "support_tickets.jsonl"
    path.write_text(
        "".join(
            json.dumps({"utterance": r["text"], "intent": r["category"]}) + "\n"
            for r in banking_rows
        )
    )
    code, records, _ = run(
        capsys, tmp_path, "--task-file", str(path),
        "--text-col", "utterance", "--label-col", "intent",
        "--method", "protonet,random", "--k-shot", "5",
    )  # fmt: skip
    assert code == 0 and len(records) == 2
    by_method = {r["method"]: r for r in records}
    assert by_method["protonet"]["task"] == "support_tickets"
    assert by_method["protonet"]["family"] == "custom"
    assert by_method["protonet"]["classes_available"] == 20
    assert by_method["protonet"]["mean"] > by_method["random"]["mean"] + 0.2


def test_csv_and_tsv_with_column_flags(capsys, tmp_path, banking_rows):
    csv_path = tmp_path / "tickets.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["id", "category", "body"])
        writer.writerows([i, r["category"], r["text"]] for i, r in enumerate(banking_rows))
    tsv_path = tmp_path / "tickets_tab.data"
    tsv_path.write_text(
        "body\tcategory\n" + "".join(f"{r['text']}\t{r['category']}\n" for r in banking_rows)
    )
    for path, extra in ((csv_path, ()), (tsv_path, ("--format", "tsv"))):
        code, records, err = run(
            capsys, tmp_path / path.stem, "--task-file", str(path), *extra,
            "--text-col", "body", "--label-col", "category",
            "--method", "protonet", "--k-shot", "1",
        )  # fmt: skip
        assert code == 0, err
        assert records[0]["mean"] > 0.5


def test_conll_file_runs_a_tagging_cell(capsys, tmp_path, shared_data):
    sentences = read_conll(shared_data / "crossner/ai/test.txt")
    path = tmp_path / "my_ner.conll"
    lines = ["-DOCSTART- O", ""]
    for sentence in sentences:
        lines += [f"{t} {g}" for t, g in zip(sentence.tokens, sentence.tags, strict=True)] + [""]
    path.write_text("\n".join(lines))
    code, records, err = run(
        capsys, tmp_path, "--task-file", str(path), "--method", "ner-protonet-frozen",
        "--n-way", "3", "--k-shot", "2", "--n-query", "2",
    )  # fmt: skip
    assert code == 0, err
    assert records[0]["metric"] == "entity-f1" and 0.0 < records[0]["mean"] <= 1.0


def test_split_file_and_train_classes(tmp_path):
    path = tmp_path / "toy.jsonl"
    rows = [{"text": f"text {c} {i}", "label": c} for c in "abcdef" for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_file_task(path)
    assert list(task.splits) == ["test"] and len(task.split("test").labels()) == 6
    task = load_file_task(path, train_classes=("a", "b"))
    assert task.split("train").labels() == ("a", "b")
    assert task.split("test").labels() == ("c", "d", "e", "f")
    split_file = tmp_path / "split.json"
    split_file.write_text(
        json.dumps({"train": ["a", "b", "c"], "valid": ["d"], "test": ["e", "f"]})
    )
    task = load_file_task(path, split_file=split_file)
    assert {k: v.labels() for k, v in task.splits.items()} == {
        "train": ("a", "b", "c"), "valid": ("d",), "test": ("e", "f"),
    }  # fmt: skip
    split_file.write_text(json.dumps({"train": ["a", "zzz"], "test": ["e"]}))
    with pytest.raises(
        Exception, match=r"split.json: split 'train' names classes with no examples: \['zzz'\]"
    ):
        load_file_task(path, split_file=split_file)
    split_file.write_text(json.dumps({"train": ["a"], "test": ["a"]}))
    with pytest.raises(Exception, match="class 'a' is in both 'train' and 'test'"):
        load_file_task(path, split_file=split_file)


@pytest.mark.parametrize(
    ("name", "content", "flags", "message"),
    [
        (
            "bad.jsonl",
            '{"text": "hi", "label": "a"}\n{"text": "oops", \n',
            (),
            r"bad.jsonl:2: invalid JSON",
        ),
        (
            "nolabel.jsonl",
            '{"text": "hi", "label": "a"}\n{"text": "x"}\n',
            (),
            r"nolabel.jsonl:2: expected an object with 'text' and 'label'",
        ),
        (
            "cols.csv",
            "sentence,label\nhi,a\n",
            (),
            r"cols.csv:1: no column 'text' \(set --text-col\); the header has \['sentence', ",
        ),
        (
            "gap.csv",
            "text,label\nhi,a\n,b\n",
            (),
            r"gap.csv:3: expected non-empty 'text' and 'label'",
        ),
        (
            "notag.conll",
            "Paris B-location\nis\n",
            (),
            r"notag.conll:2: expected 'token<TAB>tag'; this line has no tag",
        ),
        (
            "bio.conll",
            "the O\nCity I-location\n",
            (),
            r"bio.conll:2: invalid BIO sequence: 'I-location' follows 'O'",
        ),
        ("weird.xyz", "whatever\n", (), r"cannot tell the format of weird.xyz .* pass --format"),
        (
            "comma.csv",
            "text,label\nhi,a\nhello, how are you,b\n",
            (),
            r"comma.csv:3: 3 fields, but the header has 2 \(quote a text that holds the delimiter",
        ),
        (
            "open.csv",
            'text,label\nhi,a\n"left open,b\nyo,b\nho,a\n',
            (),
            r"open.csv:3: 1 fields, but the header has 2 \(a row with too few fields, or a quote",
        ),
        (
            "null.jsonl",
            '{"text": "hi", "label": "a"}\n{"text": "x", "label": null}\n',
            (),
            r"null.jsonl:2: 'label' must be a non-empty string or an integer, not None",
        ),
    ],
)
def test_malformed_files_name_file_line_and_expectation(
    capsys, tmp_path, name, content, flags, message
):
    path = tmp_path / name
    path.write_text(content)
    code, _, err = run(capsys, tmp_path, "--task-file", str(path), *flags, "--method", "protonet")
    assert code == 2
    assert re.search(message, err), err


def test_gzipped_and_byte_order_marked_files_are_read(tmp_path):
    rows = "".join(
        json.dumps({"text": f"t {c} {i}", "label": c}) + "\n" for c in "ab" for i in "12"
    )
    packed = tmp_path / "toy.jsonl.gz"
    packed.write_bytes(gzip.compress(rows.encode()))
    assert load_file_task(packed).split("test").size() == 4
    excel = tmp_path / "excel.csv"
    excel.write_bytes(b"\xef\xbb\xbftext,label\nhi,a\nyo,b\n")
    assert load_file_task(excel).split("test").labels() == ("a", "b")
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(Exception, match=r"broken.jsonl.gz: not a readable gzip file"):
        load_file_task(broken)


def test_repeated_conll_sentences_are_dropped(tmp_path):
    path = tmp_path / "twice.conll"
    path.write_text("Paris B-location\n\nRome B-location\n\nParis B-location\n")
    task = load_file_task(path)
    assert task.split("test").size() == 2
    assert task.notes == ("dropped 1 repeated sentence(s)",)


def test_the_class_split_and_columns_are_part_of_the_cell(tmp_path):
    """Another split of the classes, or other columns, is another experiment: its own key."""
    path = tmp_path / "four.csv"
    path.write_text("text,label,domain\n" + "".join(
        f"t{c}{i},{c},{'xy'[i % 2]}\n" for c in "abcd" for i in range(4)))  # fmt: skip
    first = load_file_task(path, train_classes=("a", "b"))
    second = load_file_task(path, train_classes=("c", "d"))
    assert first.split_name != second.split_name
    assert first.split_name.startswith("train-classes:")
    by_domain = load_file_task(path, label_col="domain")
    assert by_domain.card.version != load_file_task(path).card.version
    assert by_domain.card.version.endswith("-csv:text,domain")


def test_encoding_errors_are_reported_not_replaced(capsys, tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    code, _, err = run(capsys, tmp_path, "--task-file", str(path), "--method", "protonet")
    assert code == 2
    assert "latin.jsonl:2: not valid UTF-8 at byte 14 of the line" in err


def test_small_classes_are_named_and_can_be_dropped(capsys, tmp_path):
    path = tmp_path / "uneven.jsonl"
    rows = [
        {"text": f"{c} sample {i}", "label": c}
        for c, n in (("big1", 30), ("big2", 30), ("big3", 30), ("tiny", 4), ("empty-ish", 1))
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = (
        "--task-file",
        str(path),
        "--method",
        "protonet",
        "--n-way",
        "3",
        "--k-shot",
        "1",
        "--n-query",
        "5",
    )
    code, _, err = run(capsys, tmp_path, *argv)
    assert code == 2
    assert "2 class(es) have fewer than 6 examples: 'empty-ish' (1), 'tiny' (4)" in err
    assert "--drop-small-classes" in err
    code, records, err = run(capsys, tmp_path, *argv, "--drop-small-classes")
    assert code == 0
    assert "left out 2 class(es) too small for 3w-1s-5q: empty-ish, tiny" in err
    assert records[0]["classes_available"] == 3


def test_a_new_user_runs_a_file_with_the_console_command(tmp_path):
    path = tmp_path / "faq.jsonl"
    rows = [
        {"text": f"question {i} about {topic}", "label": topic}
        for topic in ("billing", "login", "refunds")
        for i in range(8)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = subprocess.run(
        ["fewshot-bench", "run", "--task-file", str(path), "--method", "nearest-neighbour",
         "--n-way", "3", "--k-shot", "2", "--n-query", "3", *FAST, "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| faq " in done.stdout and "mean ± 95% CI" in done.stdout


def test_corrupt_label_names_name_the_file(tmp_path, shared_data):
    folder = tmp_path / "huffpost"
    folder.mkdir()
    for name in ("huffpost.json", "label_names.json"):
        (folder / name).write_bytes((shared_data / "huffpost" / name).read_bytes())
    (folder / "label_names.json").write_text('{"0": "politics",\n "1": }')
    with pytest.raises(Exception, match=r"label_names.json:2: invalid JSON"):
        TASKS.get("huffpost").load(tmp_path, 1)
    (folder / "label_names.json").write_text('{"0": "politics"}')
    with pytest.raises(Exception, match=r"label_names.json: no names for labels \['1', "):
        TASKS.get("huffpost").load(tmp_path, 1)
