"""Execution backends: in-process, a local process pool and Ray give identical records; when the
automatic worker count switches to a pool; missing Ray; per-cell experiment tracking."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.core.types import EpisodeSpec
from benchmark.engine import sweep as sweeps
from benchmark.engine.backends import BackendError, available_cpus, make_backend, threads_per_worker
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import load_records
from benchmark.engine.sweep import run_sweep
from benchmark.engine.tracking import TrackingError

RESULT_FIELDS = ("key", "per_episode", "mean", "ci95", "episodes_fingerprint", "status")
SWEEP = Sweep(
    tasks=("clinc150",),
    methods=("protonet", "logistic-regression", "random"),
    specs=(EpisodeSpec(5, 1, 5), EpisodeSpec(5, 2, 5)),
    episodes=10,
    seeds=(0, 1),
    encoder="hashing-bow",
)


def results(records: list[dict]) -> list[tuple]:
    """The fields that define results, in plan order (timings and dates left out)."""
    return [tuple(r[f] for f in RESULT_FIELDS) for r in records]


def options(out: Path, **changes) -> RunOptions:
    return RunOptions(out=out, device="cpu", progress=False, **changes)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """The records of SWEEP with every cell run in this process."""
    here = run_sweep(SWEEP, options(tmp_path_factory.mktemp("here"), workers=1))
    assert (here.ran, here.failed, here.pooled) == (6, 0, 0)
    assert {r["method"]: r["mean"] for r in here.records if r["k_shot"] == 1}["random"] < 0.5
    return here.records


def test_a_local_pool_gives_the_in_process_records(tmp_path, monkeypatch, in_process):
    # Automatic workers, told that any rest is long: the first cell here, the rest in a pool.
    monkeypatch.setattr(sweeps, "POOL_AFTER_S", 0.0)
    pooled = run_sweep(SWEEP, options(tmp_path))
    assert (pooled.ran, pooled.failed, pooled.pooled) == (6, 0, 5)
    assert pooled.workers == min(available_cpus(), 5)
    assert results(pooled.records) == results(in_process)
    assert sorted(results(load_records(tmp_path))) == sorted(results(in_process))


def test_ray_gives_the_in_process_records(tmp_path, in_process):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run_sweep(SWEEP, options(tmp_path, backend="ray"))
    finally:
        ray.shutdown()
    assert (on_ray.ran, on_ray.failed, on_ray.pooled, on_ray.workers) == (6, 0, 6, 2)
    assert results(on_ray.records) == results(in_process)
    assert sorted(results(load_records(tmp_path))) == sorted(results(in_process))


def test_a_dying_worker_stops_the_run_with_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("FEWSHOT_TEST_PID", str(os.getpid()))
    sweep = dataclasses.replace(SWEEP, methods=("random", "cell_plugins:CrashesWorkers"))
    with pytest.raises(BackendError, match=r"a worker process died .* rerun the same command"):
        run_sweep(sweep, options(tmp_path, workers=2))
    assert {r["method"] for r in load_records(tmp_path)} <= {"random"}  # whole records only


def test_automatic_workers_stay_in_process_for_short_sweeps(tmp_path):
    quick = run_sweep(SWEEP, options(tmp_path))
    assert (quick.ran, quick.pooled, quick.workers) == (6, 0, 0)
    cells, short, long = list(range(4)), sweeps.POOL_AFTER_S / 8, sweeps.POOL_AFTER_S / 2
    auto = options(tmp_path)
    assert sweeps._stay_here(auto, 0, 0.0, cells)  # the first cell always runs here
    assert sweeps._stay_here(auto, 1, short, cells)  # 4 more cells: half of POOL_AFTER_S
    if available_cpus() > 1:
        assert not sweeps._stay_here(auto, 1, long, cells)  # 2 x POOL_AFTER_S more: a pool
        assert sweeps._stay_here(options(tmp_path, cache=False), 1, long, cells)
    assert sweeps._stay_here(options(tmp_path, workers=1), 1, long, cells)
    assert not sweeps._stay_here(options(tmp_path, workers=2), 0, 0.0, cells)
    assert sweeps._stay_here(options(tmp_path, workers=2), 0, 0.0, cells[:1])  # the last cell
    assert not sweeps._stay_here(options(tmp_path, backend="ray"), 0, 0.0, cells[:1])


def test_threads_per_worker_never_oversubscribe():
    cpus = available_cpus()
    for workers in range(1, 2 * cpus + 1):
        threads = threads_per_worker(workers)
        assert threads >= 1 and (workers * threads <= cpus or threads == 1)


def test_ray_missing_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(BackendError, match=r"needs Ray, which is not installed: pip install"):
        make_backend("ray", 2)
    flags = ["run", "--task", "clinc150", "--method", "random", "--k-shot", "1",
             "--episodes", "2", "--seeds", "1", "--out", str(tmp_path), "--backend", "ray",
             "--quiet"]  # fmt: skip
    assert main(flags) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert error.startswith("fewshot-bench: error: --backend ray needs Ray")
    assert "fewshot-bench[ray]" in error
    assert not list(tmp_path.glob("*.json"))  # refused before any cell ran


def test_wandb_missing_is_a_clear_error_before_any_cell(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(TrackingError, match=r"--wandb needs Weights & Biases.*pip install"):
        run_sweep(SWEEP, options(tmp_path, wandb=True))
    assert not list(tmp_path.glob("*.json"))


def test_tensorboard_gets_each_cells_metrics(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_sweep(SWEEP, options(tmp_path / "out", tensorboard=tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert len(events.Tags()["scalars"]) == 6 * 4
    for step, record in enumerate(result.records):
        name = f"clinc150/{record['method']}/5w-{record['k_shot']}s-5q"
        (mean,) = events.Scalars(f"{name}/mean")
        assert (mean.step, mean.value) == (step, pytest.approx(record["mean"], abs=1e-6))
        (ci95,) = events.Scalars(f"{name}/ci95")
        assert ci95.value == pytest.approx(record["ci95"], abs=1e-6)
        (wall,) = events.Scalars(f"{name}/wall_s")
        assert wall.value == pytest.approx(record["throughput"]["wall_s"], rel=1e-6)


def test_wandb_logs_offline_without_an_account(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for variable in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep = dataclasses.replace(SWEEP, methods=("random",))
    result = run_sweep(sweep, options(tmp_path / "out", wandb=True))
    (run_dir,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    assert next(run_dir.glob("run-*.wandb")).stat().st_size > 0  # the logged history
    (table,) = run_dir.glob("files/media/table/cells_*.table.json")
    cells = json.loads(table.read_text())
    assert cells["columns"][:6] == ["task", "method", "spec", "status", "mean", "ci95"]
    assert [row[:6] for row in cells["data"]] == [
        ["clinc150", "random", f"5w-{r['k_shot']}s-5q", "ok", r["mean"], r["ci95"]]
        for r in result.records
    ]
