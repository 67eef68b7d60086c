"""The command line: runs, result listing, and each user error with its message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import benchmark.engine.encoders
from benchmark.cli import main

FAST = ["--encoder", "hashing-bow", "--episodes", "20", "--seeds", "2", "--no-progress"]


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def no_encoding(monkeypatch):
    """Fail the test if anything tries to build an encoder."""

    def refuse(*args, **kwargs):
        raise AssertionError("an encoder was built before the input was checked")

    monkeypatch.setattr(benchmark.engine.encoders, "build_encoder", refuse)


def test_run_prints_tables_and_writes_one_record_per_cell(tmp_path, capsys):
    out = tmp_path / "runs"
    code, stdout, _ = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet,majority",
        "--k-shot", "1,5", "--out", str(out), *FAST,
    )  # fmt: skip
    assert code == 0
    assert "mean ± 95% CI (%)" in stdout and "episodes/s" in stdout and "peak MB" in stdout
    assert len(list(out.glob("*.json"))) == 4
    code, stdout, _ = run_cli(capsys, "results", str(out), "--json")
    records = json.loads(stdout)
    assert code == 0 and len(records) == 4
    assert {(r["method"], r["k_shot"]) for r in records} == {
        ("protonet", 1), ("protonet", 5), ("majority", 1), ("majority", 5),
    }  # fmt: skip
    assert all(r["n_episodes"] == 40 and r["seeds"] == [0, 1] for r in records)


def test_unknown_task_suggests(capsys, no_encoding):
    code, _, err = run_cli(capsys, "run", "--task", "clinc", "--method", "protonet", *FAST)
    assert code == 2
    assert "unknown task 'clinc'. Did you mean 'clinc150'?" in err


def test_unknown_method_suggests(capsys, no_encoding):
    code, _, err = run_cli(capsys, "run", "--task", "clinc150", "--method", "proto-net", *FAST)
    assert code == 2
    assert "unknown method 'proto-net'. Did you mean 'protonet'" in err


def test_unknown_encoder_suggests(capsys, tmp_path):
    code, _, err = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet", "--out", str(tmp_path),
        "--encoder", "all-minilm-l6-v2", "--episodes", "2", "--no-progress",
    )  # fmt: skip
    assert code == 2
    assert "unknown encoder 'all-minilm-l6-v2'. Did you mean 'all-MiniLM-L6-v2'?" in err


def test_n_way_too_large_fails_before_encoding(capsys, no_encoding):
    code, _, err = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet", "--n-way", "60", *FAST
    )
    assert code == 2
    assert "n_way=60 is larger than the 50 classes of split 'test' of clinc150" in err


def test_shots_plus_queries_too_large_fails_before_encoding(capsys, no_encoding):
    code, _, err = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet",
        "--k-shot", "100", "--n-query", "60", *FAST,
    )  # fmt: skip
    assert code == 2
    assert "k_shot + n_query = 100 + 60 = 160 is larger than some classes" in err
    assert "50 class(es) have fewer than 160 examples: 'todo_list' (149)" in err
    assert "--drop-small-classes" in err


def test_missing_data_dir_says_how_to_set_it(capsys, tmp_path, no_encoding):
    code, _, err = run_cli(
        capsys, "run", "--task", "clinc150", "--method", "protonet",
        "--data-dir", str(tmp_path / "absent"), *FAST,
    )  # fmt: skip
    assert code == 2
    assert f"data directory {tmp_path / 'absent'} (from --data-dir) does not exist" in err
    assert "FEWSHOT_BENCH_DATA" in err


def test_bad_numbers_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["run", "--task", "clinc150", "--method", "protonet", "--k-shot", "1,x"])
    assert caught.value.code == 2
    assert "expected comma-separated integers, got '1,x'" in capsys.readouterr().err


def test_list_commands(capsys):
    tasks = run_cli(capsys, "list", "tasks")[1]
    assert "| clinc150 " in tasks and "train 50 / valid 50 / test 50" in tasks
    for family in ("intent", "topic", "sentiment", "relation", "ner", "domain shift"):
        assert f"| {family} " in tasks
    methods = run_cli(capsys, "list", "methods")[1]
    for name in (
        "protonet",
        "protonet-cosine",
        "nearest-neighbour",
        "logistic-regression",
        "random",
    ):
        assert f"| {name} " in methods
    assert "all-MiniLM-L6-v2" in run_cli(capsys, "list", "encoders")[1]


def test_console_script_is_installed():
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "run" in done.stdout and "results" in done.stdout
    done = subprocess.run(["fewshot-bench", "list", "methods"], capture_output=True, text=True)
    assert done.returncode == 0 and "protonet" in done.stdout


def test_describe_shows_card_and_loaded_counts(capsys):
    code, out, _ = run_cli(capsys, "describe", "clinc150")
    assert code == 0
    assert "license: CC BY 3.0" in out and "family: intent" in out
    assert "class split: protaugment-01 (split ids: 1, 2, 3, 4, 5)" in out
    assert "| test    | sampled    | 50        | 7,497" in out


def test_a_classification_method_on_a_tagging_task_is_refused(capsys, no_encoding):
    code, _, err = run_cli(capsys, "run", "--task", "crossner-music", "--method", "protonet", *FAST)
    assert code == 2
    assert (
        "method 'protonet' handles classification tasks, but 'crossner-music' is a tagging" in err
    )
    assert "ner-protonet" in err


def test_unavailable_data_is_skipped_only_when_asked(capsys, tmp_path, no_encoding):
    empty = tmp_path / "data"
    empty.mkdir()
    argv = ("run", "--task", "sst2", "--method", "majority", "--data-dir", str(empty), *FAST)
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "a"))
    assert code == 2 and "data set 'sst' not found" in err
    code, _, err = run_cli(capsys, *argv, "--out", str(tmp_path / "b"), "--skip-unavailable")
    assert code == 0 and "skipping task sst2: data set 'sst' not found" in err


def test_hub_source_knows_only_hub_tasks(capsys, no_encoding):
    code, _, err = run_cli(
        capsys, "run", "--source", "hub", "--task", "huffpost", "--method", "protonet", *FAST
    )
    assert code == 2
    assert "unknown hub task 'huffpost'" in err


def test_a_mistyped_device_fails_before_any_cell(capsys, tmp_path):
    code = main(["run", "--task", "clinc150", "--method", "random", "--device", "gpu",
                 "--episodes", "2", "--seeds", "1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert "--device 'gpu': use cpu, cuda, cuda:N or auto" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_out_that_is_a_file_and_a_file_task_named_like_a_builtin_are_refused(capsys, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    argv = ["run", "--task", "clinc150", "--method", "random", "--episodes", "2", "--seeds", "1"]
    assert main([*argv, "--out", str(taken)]) == 2
    assert f"cannot use --out {taken} as a results folder" in capsys.readouterr().err
    clash = tmp_path / "clinc150.csv"
    clash.write_text("text,label\na,x\nb,y\n")
    code = main(["run", "--task-file", str(clash), "--method", "random", "--n-way", "2",
                 "--episodes", "2", "--seeds", "1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert "would be task 'clinc150', the name of a built-in task" in capsys.readouterr().err


def test_one_way_classification_is_refused(capsys, tmp_path):
    code = main(["run", "--task", "clinc150", "--method", "random", "--n-way", "1",
                 "--episodes", "2", "--seeds", "1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert (
        "n_way=1 on clinc150: a classification episode needs at least 2" in capsys.readouterr().err
    )
