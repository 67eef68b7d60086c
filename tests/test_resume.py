"""Crash safety of the results store: a sweep killed with SIGKILL resumes to the records of an
uninterrupted run; concurrent sweeps into one store; failed cells kept, then retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cell_plugins import FAIL_ENV, SLEEP_ENV

from benchmark.cli import main
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import load_records, record_files
from benchmark.engine.sweep import run_sweep

TESTS = Path(__file__).resolve().parent
RESULT_FIELDS = ("key", "per_episode", "mean", "ci95", "episodes_fingerprint", "status")
SLEEPY = "cell_plugins:Sleepy"
SWEEP_FLAGS = (
    "--task", "clinc150", "--method", f"{SLEEPY},protonet,random", "--encoder", "hashing-bow",
    "--n-way", "5", "--k-shot", "1,2,3", "--n-query", "5", "--episodes", "10", "--seeds", "2",
    "--device", "cpu", "--no-progress", "--quiet",
)  # fmt: skip
CELLS = 9  # 3 methods x 3 shots


def results(records: list[dict]) -> dict[str, tuple]:
    """The fields that define results, by cell key (timings and dates left out)."""
    return {r["key"]: tuple(r[f] for f in RESULT_FIELDS) for r in records}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """The sweep of SWEEP_FLAGS run once, uninterrupted, in this process (no sleeping)."""
    sweep = Sweep(
        tasks=("clinc150",),
        methods=(SLEEPY, "protonet", "random"),
        specs=tuple(EpisodeSpec(5, k, 5) for k in (1, 2, 3)),
        episodes=10,
        seeds=(0, 1),
        encoder="hashing-bow",
    )
    out = tmp_path_factory.mktemp("reference")
    result = run_sweep(sweep, RunOptions(out=out, device="cpu", progress=False, workers=1))
    assert (result.ran, result.failed) == (CELLS, 0)
    return results(result.records)


def start_sweep(out: Path, *flags: str, sleep_s: float = 0.0) -> subprocess.Popen:
    """`python -m benchmark.cli run SWEEP_FLAGS` in its own process group."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    env[SLEEP_ENV] = str(sleep_s)
    command = [sys.executable, "-m", "benchmark.cli", "run", *SWEEP_FLAGS, "--out", str(out)]
    return subprocess.Popen(
        [*command, *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_records(out: Path, count: int, process: subprocess.Popen, timeout_s: float) -> int:
    """Poll until `out` holds `count` records; returns how many it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        found = len(record_files(out)) if out.is_dir() else 0
        if found >= count:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{count} records did not appear: {process.communicate()}")


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_until_gone(pids: list[int], timeout_s: float) -> list[int]:
    """The processes of `pids` still alive after up to `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigkilled_sweep_resumes_to_the_uninterrupted_records(tmp_path, reference, workers):
    out = tmp_path / "store"
    # Sleepy cells take 20 episodes x 0.5 s (10 s each): killing after 2 records lands mid-sweep
    # even when a loaded machine makes this process poll late.
    victim = start_sweep(out, "--workers", workers, sleep_s=0.5)
    at_kill = wait_for_records(out, 2, victim, timeout_s=30)
    children = Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()
    os.kill(victim.pid, signal.SIGKILL)  # the main process only: its workers must stop too
    victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    assert len(children) >= (2 if workers == "2" else 0)  # (+ the resource tracker)
    assert wait_until_gone([int(pid) for pid in children], timeout_s=10) == []
    survivors = load_records(out)  # every file a killed run left is a whole record
    assert 2 <= at_kill <= len(survivors) < CELLS
    assert all(results([r])[r["key"]] == reference[r["key"]] for r in survivors)

    resumed = start_sweep(out, "--workers", workers)
    stdout, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr
    assert f"{CELLS - len(survivors)} cell(s) run" in stdout
    assert f"{len(survivors)} reused" in stdout
    records = load_records(out)
    assert len(records) == len(record_files(out)) == CELLS  # each cell exactly once
    assert results(records) == reference


def test_ctrl_c_stops_a_worker_sweep_at_once_and_it_resumes(tmp_path, reference):
    """Ctrl-C (SIGINT to the whole process group, twice) ends a `--workers` sweep within
    seconds, without waiting for the running cells; the stored records are whole and reused."""
    out = tmp_path / "store"
    victim = start_sweep(out, "--workers", "2", sleep_s=0.5)
    wait_for_records(out, 2, victim, timeout_s=30)
    children = Path(f"/proc/{victim.pid}/task/{victim.pid}/children").read_text().split()
    os.killpg(victim.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGINT)
    victim.communicate(timeout=20)
    assert victim.returncode != 0
    assert wait_until_gone([int(pid) for pid in children], timeout_s=10) == []
    survivors = load_records(out)
    assert 2 <= len(survivors) < CELLS
    assert all(results([r])[r["key"]] == reference[r["key"]] for r in survivors)
    resumed = start_sweep(out, "--workers", "2")
    stdout, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, stderr
    assert f"{len(survivors)} reused" in stdout
    assert results(load_records(out)) == reference


def test_two_sweeps_writing_one_store_at_once_leave_whole_records(tmp_path, reference):
    out = tmp_path / "store"
    first, second = start_sweep(out, "--workers", "1", sleep_s=0.02), None
    wait_for_records(out, 1, first, timeout_s=30)
    second = start_sweep(out, "--workers", "1", sleep_s=0.02)
    for process in (first, second):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
    records = load_records(out)
    assert len(records) == len(record_files(out)) == CELLS
    assert results(records) == reference
    assert not list(out.glob(".partial-*"))


def test_a_failing_cell_is_kept_until_retry_failed_reruns_only_it(tmp_path, monkeypatch, capsys):
    huffpost = TASKS.get("huffpost").load(None, 1).split("test").labels()
    monkeypatch.setenv(FAIL_ENV, ",".join(huffpost))
    out = tmp_path / "store"
    flags = [
        "run", "--task", "clinc150,huffpost", "--method", "cell_plugins:FailsOnLabels,random",
        "--k-shot", "1", "--n-query", "5", "--episodes", "5", "--seeds", "2", "--device", "cpu",
        "--no-progress", "--quiet", "--out", str(out), "--workers", "2",
    ]  # fmt: skip
    assert main(flags) == 1
    printed = capsys.readouterr()
    assert "4 cell(s) run (4 by 2 workers), 0 reused" in printed.out
    assert "1 failed" in printed.out
    assert "failed: huffpost cell_plugins:FailsOnLabels 5w-1s-5q: RuntimeError: planted" in (
        printed.err
    )
    records = {(r["task"], r["method"]): r for r in load_records(out)}
    failed = records["huffpost", "cell_plugins:FailsOnLabels"]
    assert failed["status"] == "failed"
    assert failed["error"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: planted failure on label" in failed["error"]
    assert [r["status"] for r in records.values()].count("ok") == 3
    files = {path: path.read_bytes() for path in record_files(out)}

    assert main(flags) == 1  # kept, not rerun
    printed = capsys.readouterr()
    assert "0 cell(s) run, 3 reused" in printed.out
    assert "1 failed cell(s) kept from an earlier run; --retry-failed reruns them" in printed.out
    assert {path: path.read_bytes() for path in record_files(out)} == files

    monkeypatch.delenv(FAIL_ENV)
    assert main([*flags, "--retry-failed"]) == 0
    assert "1 cell(s) run, 3 reused" in capsys.readouterr().out
    after = {path: path.read_bytes() for path in record_files(out)}
    changed = [path for path in files if after[path] != files[path]]
    assert [json.loads(after[path])["task"] for path in changed] == ["huffpost"]
    assert json.loads(after[changed[0]])["status"] == "ok"
    assert json.loads(after[changed[0]])["method"] == "cell_plugins:FailsOnLabels"
