"""Result records: arithmetic, schema, reuse of finished cells, failures, corrupt files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from benchmark.core.errors import DataFormatError
from benchmark.core.methods import METHODS, MethodEntry
from benchmark.core.types import EpisodeSpec
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import (
    IDENTITY_FIELDS,
    SCHEMA_VERSION,
    CorruptRecordError,
    cell_key,
    load_records,
    read_record,
    write_json_atomically,
)
from benchmark.engine.sweep import run_sweep

from helpers import Exploding, NoConfig, expected_summary

SCHEMA = json.loads(
    (Path(__file__).resolve().parent.parent / "results/schema/record.schema.json").read_text()
)


def small_sweep(methods=("protonet", "random"), seeds=(0, 1)) -> Sweep:
    return Sweep(
        tasks=("clinc150",),
        methods=methods,
        specs=(EpisodeSpec(5, 1, 5), EpisodeSpec(5, 2, 5)),
        episodes=15,
        seeds=seeds,
        encoder="hashing-bow",
    )


def options(out: Path, **changes) -> RunOptions:
    return RunOptions(out=out, device="cpu", progress=False, **changes)


def comparable(record: dict) -> dict:
    varying = {"throughput", "peak_memory_mb", "created_at"}
    return {k: v for k, v in record.items() if k not in varying}


def test_records_follow_from_their_own_scores_and_match_the_schema(tmp_path):
    result = run_sweep(small_sweep(), options(tmp_path))
    assert result.ran == 4 and result.failed == 0
    for record in load_records(tmp_path):
        jsonschema.validate(record, SCHEMA)
        summary = expected_summary(record)
        assert record["mean"] == pytest.approx(summary.mean, abs=1e-12)
        assert record["ci95"] == pytest.approx(summary.ci95, abs=1e-12)
        assert len(record["per_episode"]) == record["n_episodes"] == 30
        assert all(0.0 <= s <= 1.0 for s in record["per_episode"])
        assert record["per_seed_mean"] == pytest.approx(
            [sum(record["per_episode"][:15]) / 15, sum(record["per_episode"][15:]) / 15]
        )
        assert record["versions"]["torch"] and record["device"] == "cpu"
        assert record["method_config"]["name"] == record["method"]
        assert record["encoder"] == ("hashing-bow" if record["method"] == "protonet" else None)


def test_same_sweep_gives_same_numbers_and_finished_cells_are_reused(tmp_path):
    first = run_sweep(small_sweep(), options(tmp_path / "a"))
    again = run_sweep(small_sweep(), options(tmp_path / "b"))
    assert [comparable(r) for r in first.records] == [comparable(r) for r in again.records]
    reused = run_sweep(small_sweep(), options(tmp_path / "a"))
    assert (reused.ran, reused.reused) == (0, 4)
    assert [comparable(r) for r in reused.records] == [comparable(r) for r in first.records]
    forced = run_sweep(small_sweep(), options(tmp_path / "a", force=True))
    assert (forced.ran, forced.reused) == (4, 0)
    assert len(list((tmp_path / "a").glob("*.json"))) == 4


def test_more_seeds_is_a_different_cell(tmp_path):
    run_sweep(small_sweep(), options(tmp_path))
    wider = run_sweep(small_sweep(seeds=(0, 1, 2)), options(tmp_path))
    assert wider.ran == 4
    assert len(list(tmp_path.glob("*.json"))) == 8


def test_a_failing_cell_is_stored_and_the_sweep_goes_on(tmp_path, monkeypatch):
    entry = MethodEntry("raises on fit", NoConfig(), Exploding)
    monkeypatch.setitem(METHODS._entries, "exploding", entry)
    result = run_sweep(small_sweep(methods=("exploding", "protonet")), options(tmp_path))
    assert (result.ran, result.failed) == (4, 2)
    by_status = {(r["method"], r["status"]) for r in result.records}
    assert by_status == {("exploding", "failed"), ("protonet", "ok")}
    failed = [r for r in load_records(tmp_path) if r["status"] == "failed"]
    assert len(failed) == 2
    assert all(Exploding.MESSAGE in r["error"] for r in failed)
    assert all("Traceback" in r["error"] for r in failed)
    for record in failed:
        jsonschema.validate(record, SCHEMA)
    # A failed cell is kept on the next run; --retry-failed reruns it, finished ones are reused.
    kept = run_sweep(small_sweep(methods=("exploding", "protonet")), options(tmp_path))
    assert (kept.ran, kept.reused, kept.kept_failed) == (0, 2, 2)
    assert [r["error"] for r in kept.records] == [r["error"] for r in result.records]
    retry = run_sweep(
        small_sweep(methods=("exploding", "protonet")), options(tmp_path, retry_failed=True)
    )
    assert (retry.ran, retry.reused, retry.failed, retry.kept_failed) == (2, 2, 2, 0)


def test_corrupt_record_names_the_file_and_line(tmp_path):
    run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    victim = sorted(tmp_path.glob("*.json"))[0]
    text = victim.read_text()
    victim.write_text(text[: len(text) // 2])
    with pytest.raises(DataFormatError, match=rf"{victim.name}:\d+: not a valid result record"):
        load_records(tmp_path)


def test_resuming_over_a_corrupt_record_fails_naming_it_and_never_overwrites_it(tmp_path):
    run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    (tmp_path / ".partial-killed.tmp").write_text('{"schema_version": 1, "ke')  # a killed write
    assert len(load_records(tmp_path)) == 2
    victim = sorted(tmp_path.glob("*.json"))[0]
    truncated = victim.read_bytes()[:100]
    victim.write_bytes(truncated)
    for force in (False, True):
        with pytest.raises(CorruptRecordError, match=rf"{victim.name}:\d+: .*move or delete"):
            run_sweep(small_sweep(methods=("random",)), options(tmp_path, force=force))
    assert victim.read_bytes() == truncated
    other = sorted(tmp_path.glob("*.json"))[1]
    victim.write_text(other.read_text())  # another cell's whole record
    with pytest.raises(CorruptRecordError, match=rf"{victim.name}: does not hold this cell"):
        run_sweep(small_sweep(methods=("random",)), options(tmp_path))


def test_a_json_file_that_is_not_a_record_names_what_it_lacks(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "task": "t"}))
    with pytest.raises(CorruptRecordError, match=r"x.json: not a result record: no task_version, "):
        load_records(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(CorruptRecordError, match=r"x.json: not a result record: no 'task'"):
        load_records(tmp_path)


def test_newer_schema_is_refused(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(DataFormatError, match="schema_version 99 is newer"):
        load_records(tmp_path)


def test_newer_schema_record_of_a_cell_stops_a_resumed_run(tmp_path):
    run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    victim = sorted(tmp_path.glob("*.json"))[0]
    newer = SCHEMA_VERSION + 1
    victim.write_text(json.dumps({**json.loads(victim.read_text()), "schema_version": newer}))
    with pytest.raises(DataFormatError, match=rf"{victim.name}: schema_version {newer} is newer"):
        run_sweep(small_sweep(methods=("random",)), options(tmp_path))


V0_MISSING = ("family", "protocol", "source_domain", "target_domain", "classes_available")


def test_version_0_record_is_migrated_in_memory_and_its_cell_reused(tmp_path):
    first = run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    victim = sorted(tmp_path.glob("*.json"))[0]
    current = json.loads(victim.read_text())
    assert (current["family"], current["protocol"], current["classes_available"]) == (
        "intent",
        "sampled",
        50,
    )
    old_text = json.dumps(
        {**{k: current[k] for k in current if k not in V0_MISSING}, "schema_version": 0}
    )
    victim.write_text(old_text)
    migrated = read_record(victim)
    # classes_available was not recorded in version 0: n_way is its lower bound.
    assert migrated == {**current, "classes_available": 5}
    jsonschema.validate(migrated, SCHEMA)
    resumed = run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    assert (resumed.ran, resumed.reused) == (0, 2)
    assert migrated in resumed.records
    assert [r["key"] for r in resumed.records] == [r["key"] for r in first.records]
    assert victim.read_text() == old_text  # migrated on reading only


def test_version_1_record_is_migrated_with_no_checkpoint(tmp_path):
    run_sweep(small_sweep(methods=("random",)), options(tmp_path))
    victim = sorted(tmp_path.glob("*.json"))[0]
    current = json.loads(victim.read_text())
    old = {k: v for k, v in current.items() if k != "checkpoint"}
    victim.write_text(json.dumps({**old, "schema_version": 1}))
    migrated = read_record(victim)
    assert migrated == current and migrated["checkpoint"] is None
    jsonschema.validate(migrated, SCHEMA)


def test_encoder_revision_and_checkpoint_are_part_of_the_key():
    identity = {name: None for name in IDENTITY_FIELDS}
    keys = {
        cell_key(identity),
        cell_key({**identity, "encoder_revision": "local-0123456789abcdef"}),
        cell_key({**identity, "checkpoint": "0123456789abcdef"}),
    }
    assert len(keys) == 3


def test_an_interrupted_json_write_leaves_nothing_a_json_glob_reads(tmp_path):
    path = tmp_path / "bundles" / "mine.json"
    write_json_atomically(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomically(path, {"a": object()})  # fails halfway through the dump
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in path.parent.glob("*.json")] == ["mine.json"]
    assert not list(path.parent.glob(".partial-*"))
