"""Reference tables (schema, refusal of bad files) and `fewshot-bench reproduce`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import pytest

from benchmark.analysis.reference import (
    SCHEMA,
    ReferenceError,
    load_file,
    load_table,
    reference_dir,
    results_dir,
    table_names,
)
from benchmark.analysis.reproduction import (
    NOT_IMPLEMENTED,
    QUICK,
    Profile,
    binomial_ci95,
    compare,
    differences,
    options_for,
    plan_rows,
    reproduce,
    side_by_side,
)
from benchmark.cli import main
from benchmark.core.errors import UnknownNameError
from benchmark.core.methods import resolve_method
from benchmark.core.registry import TASKS
from benchmark.engine.planning import RunOptions, configured_methods

SCHEMA_JSON = json.loads((results_dir() / SCHEMA).read_text())
NAMES = table_names()


def test_reference_folder_is_the_repositorys() -> None:
    assert reference_dir() == Path(__file__).resolve().parent.parent / "results" / "reference"
    assert len(NAMES) >= 5


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_file_validates(name: str) -> None:
    data = json.loads((reference_dir() / f"{name}.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA_JSON).validate(data)
    table = load_table(name)
    assert table.name == data["table"] == name
    for entry in table.entries:
        assert float(entry.printed) == entry.value
        assert entry.setting.task is None or entry.setting.task in TASKS
    for mapping in table.methods.values():
        for method in mapping.ours:
            resolve_method(method)  # raises for an unknown method


def test_verified_tables_quote_their_numbers() -> None:
    """Verified tables quote the rows their numbers were read from; the shipped ones all are."""
    verified = [load_table(name) for name in NAMES if load_table(name).data["verified"]]
    assert len(verified) == len(NAMES)
    for table in verified:
        quote = table.data["verified_from"]["quote"]
        assert [e.printed for e in table.entries if e.printed not in quote] == [], table.name


def _write(folder: Path, name: str, data: object) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def _valid() -> dict:
    return json.loads((reference_dir() / "fewrel2-da-val.json").read_text())


def test_malformed_file_is_refused_with_file_and_field(tmp_path: Path) -> None:
    data = _valid()
    data["table"] = "broken"
    data["entries"][0]["printed"] = 70.7  # a number, not the string as printed
    path = _write(tmp_path, "broken", data)
    with pytest.raises(ReferenceError) as caught:
        load_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "entries/0/printed" in message
    assert "is not of type 'string'" in message


def test_missing_field_and_bad_json_are_refused(tmp_path: Path) -> None:
    data = _valid()
    data["table"] = "nopaper"
    del data["paper"]
    with pytest.raises(ReferenceError, match=r"nopaper\.json refused: at \(top level\): 'paper'"):
        load_file(_write(tmp_path, "nopaper", data))
    with pytest.raises(ReferenceError, match=r"bad\.json refused: not valid JSON"):
        load_file(_write(tmp_path, "bad", "{"))


def test_inconsistent_value_and_name_are_refused(tmp_path: Path) -> None:
    data = _valid()
    data["table"] = "drift"
    data["entries"][1]["value"] = 80.6
    with pytest.raises(ReferenceError, match=r"entries/1 \(BERT-PAIR.*value 80\.6 differs from "):
        load_file(_write(tmp_path, "drift", data))
    with pytest.raises(ReferenceError, match=r"'table' is 'drift' but the file is other\.json"):
        load_file(_write(tmp_path, "other", data))


def test_unverified_table_needs_a_note(tmp_path: Path) -> None:
    data = _valid()
    data["table"] = "unverified"
    data["verified"] = False
    with pytest.raises(ReferenceError, match="'note' is a required property"):
        load_file(_write(tmp_path, "unverified", data))


def test_unknown_table_suggests_close_matches(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'fewrel2-da-val'"):
        load_table("fewrel2-da")
    assert main(["reproduce", "cpft-intent-5-shot"]) == 2
    assert "Did you mean 'cpft-intent-5shot'" in capsys.readouterr().err


def test_list_names_every_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert f"| {name} " in out


def test_failed_cells_are_kept_until_retry_failed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen: list[RunOptions] = []

    def failing(table: str, profile: Profile, options: RunOptions, encoder: str):
        seen.append(options)
        return "report", False

    monkeypatch.setattr("benchmark.commands.reproduce.reproduce", failing)
    argv = ["reproduce", "fewrel2-da-val", "--quick", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "--retry-failed reruns them" in capsys.readouterr().out
    assert main([*argv, "--retry-failed"]) == 1
    assert [o.retry_failed for o in seen] == [False, True]


def test_a_results_folder_without_a_schema_uses_the_repositorys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "reference").mkdir()
    source = reference_dir() / "fewrel2-da-val.json"
    (tmp_path / "reference" / source.name).write_text(source.read_text())
    monkeypatch.setenv("FEWSHOT_BENCH_RESULTS", str(tmp_path))
    assert main(["reproduce", "--list"]) == 0
    assert "| fewrel2-da-val " in capsys.readouterr().out


def test_help_describes_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--list", "--quick", "--data-dir", "--device", "--out"):
        assert flag in text
    assert "100 episodes x 1 seed" in text
    assert "default runs/reproduce/TABLE" in text


def test_compare_difference_and_inside() -> None:
    inside = compare(0.6851, 0.0190, 66.0)
    assert inside.ours == pytest.approx(68.51)
    assert inside.ci95 == pytest.approx(1.90)
    assert inside.difference == pytest.approx(2.51)
    assert inside.inside is False
    edge = compare(0.50, 0.02, 52.0)
    assert edge.difference == pytest.approx(-2.0) and edge.inside is True
    assert compare(0.4, None, 40.0).inside is None
    assert binomial_ci95(0.9, 100) == pytest.approx(1.959964 * math.sqrt(0.09 / 100), rel=1e-6)


def _record(method: str, mean: float, ci95: float) -> dict:
    return {
        "key": method, "method": method, "status": "ok", "mean": mean, "ci95": ci95,
        "protocol": "sampled", "n_episodes": 100, "episodes_per_seed": 100, "seeds": [0],
    }  # fmt: skip


def test_side_by_side_on_hand_made_records() -> None:
    table = load_table("fewrel2-da-val")
    rows = plan_rows(table, QUICK)
    assert [r.skipped for r in rows[:4]] == [NOT_IMPLEMENTED] * 4
    assert {r.method for r in rows[4:]} == {"protonet"}
    group = ("fewrel-wiki-to-pubmed", 5, 1, 5)
    records = {(group, "protonet"): _record("protonet", 0.4975, 0.0216)}
    text = side_by_side(rows, records, None)
    lines = text.splitlines()
    assert len(lines) == 2 + 8
    row = next(line for line in lines if "Proto-CNN" in line and "5-way 1-shot" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:] == ["protonet", "49.75 ± 2.16", "100 x 1", "48.73", "+1.02", "yes"]
    missing = next(line for line in lines if "Proto-CNN" in line and "10-way 5-shot" in line)
    assert "not run" in missing and "50.39" in missing
    assert "not implemented" in next(line for line in lines if "BERT-PAIR" in line)


def test_quick_profile_skips_what_it_cannot_run() -> None:
    rows = plan_rows(load_table("bao2020-rerun-1shot"), QUICK)
    reasons = {(r.entry.dataset, r.entry.method, r.method): r.skipped for r in rows}
    assert reasons["HuffPost", "Avg + Proto", "protonet"] is None
    assert reasons["HuffPost", "Avg + Proto", "protonet-meta"] is None
    assert reasons["FewRel", "Avg + Proto", None] == "no task of ours has this setting"
    assert ("FewRel", "Avg + Proto", "protonet") not in reasons
    assert reasons["HuffPost", "Avg + RR", None] == NOT_IMPLEMENTED
    only_frozen = Profile("tiny", 3, (0,), trainable=())
    skipped = {r.skipped for r in plan_rows(load_table("bao2020-rerun-1shot"), only_frozen)}
    assert "not run (meta-trained; profile tiny)" in skipped


def test_reproduce_end_to_end_on_a_tiny_profile(shared_data: Path, tmp_path: Path) -> None:
    """One setting, one method, 3 episodes: the report agrees with the record it wrote."""
    profile = Profile("tiny", episodes=3, seeds=(0,), methods=("protonet",), settings=((5, 1),))
    options = RunOptions(out=tmp_path / "out", data_dir=shared_data, device="cpu", progress=False)
    report, ok = reproduce("fewrel2-da-val", profile, options)
    assert ok
    (path,) = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["task"], record["method"], record["n_way"], record["k_shot"]) == (
        "fewrel-wiki-to-pubmed", "protonet", 5, 1,
    )  # fmt: skip
    assert record["n_episodes"] == 3 and record["n_query"] == 5  # the README command's --Q
    row = next(
        line for line in report.splitlines() if "Proto-CNN" in line and "5-way 1-shot" in line
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    ours, ci = 100 * record["mean"], 100 * record["ci95"]
    assert cells[4:7] == [f"{ours:.2f} ± {ci:.2f}", "3 x 1", "48.73"]
    assert cells[7] == f"{ours - 48.73:+.2f}"
    assert cells[8] == ("yes" if abs(ours - 48.73) <= ci else "no")
    assert report.count("not run (profile tiny)") == 3
    assert "profile tiny: 3 episodes x 1 seed(s) (0)" in report
    assert "only 5-way 1-shot" in report
    assert "Encoder: ours is all-MiniLM-L6-v2" in report
    again, _ = reproduce("fewrel2-da-val", profile, options)  # a rerun reuses the record
    assert again == report
    assert len(list((tmp_path / "out").glob("*.json"))) == 1


def test_trained_record_shows_the_step_it_kept() -> None:
    rows = [r for r in plan_rows(load_table("bao2020-rerun-1shot"), QUICK) if r.method]
    group = ("huffpost", 5, 1, 25)
    trained = {**_record("protonet-meta", 0.455, 0.0161), "training": {"best_step": 0, "steps": 20}}
    records = {
        (group, "protonet-meta"): trained,
        (group, "protonet"): _record("protonet", 0.5, 0.01),
    }
    lines = side_by_side(rows, records, None).splitlines()
    meta = next(line for line in lines if "Avg + Proto" in line and "protonet-meta" in line)
    assert "45.50 ± 1.61 (kept step 0/20)" in meta
    assert "+12.55" in meta and meta.rstrip(" |").endswith("no")


def test_ner_tables_run_only_the_domains_we_have() -> None:
    """Few-NERD is not in our data; of Hou et al.'s four domains only News (CoNLL-2003) runs."""
    fewnerd = plan_rows(load_table("fewnerd-v6-baselines"), QUICK)
    assert {r.skipped for r in fewnerd} == {"no task of ours has this setting"}
    cross = load_table("ner-cross-dataset-baselines")
    reasons = {
        (r.entry.dataset, r.entry.method, r.entry.setting.k_shot, r.method): r.skipped
        for r in plan_rows(cross, QUICK)
    }
    for k_shot in (1, 5):
        assert reasons["News", "ProtoBERT", k_shot, "ner-protonet-frozen"] is None
        assert reasons["News", "ProtoBERT", k_shot, "ner-protonet"] is None
        assert reasons["News", "SimBERT", k_shot, "nnshot-frozen"] is None
        assert reasons["Wiki", "ProtoBERT", k_shot, None] == "no task of ours has this setting"
        assert reasons["News", "L-TapNet+CDT", k_shot, None] == NOT_IMPLEMENTED
    news = {e.setting.task for e in cross.entries if e.dataset == "News"}
    assert news == {"crossner-conll2003"}
    assert TASKS.get("crossner-conll2003").card.metric == cross.data["metric"] == "entity-f1"


def test_encoder_note_names_word_vectors_for_tagging_tables() -> None:
    tagging = differences(load_table("ner-cross-dataset-baselines"), QUICK, "enc")[0]
    assert tagging.startswith("Encoder: ours is enc (frozen contextual word vectors")
    assert "except ner-protonet, which trains it first" in tagging
    untrained = differences(
        load_table("ner-cross-dataset-baselines"), Profile("t", 1, (0,), trainable=()), "enc"
    )[0]
    assert "shared by every method)" in untrained
    classification = differences(load_table("fewrel2-da-val"), QUICK, "enc")[0]
    assert classification.startswith("Encoder: ours is enc (frozen sentence embeddings")


def test_reproduce_a_tagging_table_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    """Two NER episodes on CoNLL-2003: the report shows the record's entity F1 in %."""
    profile = Profile(
        "tiny", episodes=2, seeds=(0,), methods=("ner-protonet-frozen",), settings=((4, 1),)
    )
    options = RunOptions(out=tmp_path / "out", data_dir=shared_data, device="cpu", progress=False)
    report, ok = reproduce("ner-cross-dataset-baselines", profile, options)
    assert ok
    (path,) = (tmp_path / "out").glob("*.json")
    record = json.loads(path.read_text())
    assert (record["task"], record["method"], record["n_way"], record["k_shot"]) == (
        "crossner-conll2003", "ner-protonet-frozen", 4, 1,
    )  # fmt: skip
    lines = report.splitlines()
    row = next(
        x
        for x in lines
        if x.startswith("| News ")
        and "ProtoBERT" in x
        and "1-shot" in x
        and "ner-protonet-frozen" in x
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    ours, ci = 100 * record["mean"], 100 * record["ci95"]
    assert cells[4:8] == [f"{ours:.2f} ± {ci:.2f}", "2 x 1", "32.49", f"{ours - 32.49:+.2f}"]
    assert "(entity-f1, %)" in report


def test_a_sweep_gets_only_the_profile_options_its_methods_take() -> None:
    """A scoped option reaches its own method only; a shared one only sweeps that can take it."""
    ner = options_for({"ner-protonet", "nnshot-frozen"}, QUICK.options)
    assert ner["ner-protonet.meta_episodes"] == "300" and ner["meta_episodes"] == "80"
    assert not any(o.startswith("maml.") for o in ner)
    meta = options_for({"protonet-meta", "protonet"}, QUICK.options)
    assert "ner-protonet.meta_episodes" not in meta and meta["valid_every"] == "20"
    assert options_for({"protonet"}, QUICK.options) == {}
    configured = configured_methods(["ner-protonet"], options_for({"ner-protonet"}, QUICK.options))
    assert configured["ner-protonet"].config.meta_episodes == 300
    assert configured["ner-protonet"].config.encoder_lr == 1e-4
