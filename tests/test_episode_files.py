"""Episodes as files: export -> `run --episodes-file` gives identical scores, the file's sha256
is the cell's episode identity, tampered files are refused with their line number, and
Few-NERD episode files are read (IO tags as BIO)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.core.errors import DataFormatError
from benchmark.core.types import EpisodeSpec
from benchmark.engine.episode_files import FileEpisodes, bio_from_io, read_episodes
from benchmark.engine.store import load_records

RUN = ["run", "--method", "protonet,nearest-neighbour", "--encoder", "hashing-bow",
       "--no-progress", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("episodes") / "clinc.jsonl"
    args = ["episodes", "export", "--task", "clinc150", "--n-way", "5", "--k-shot", "2",
            "--n-query", "3", "--episodes", "12", "--seeds", "0,4", "--out", str(path)]  # fmt: skip
    assert main(args) == 0
    return path


def test_export_then_run_gives_the_sampled_run_scores(exported, tmp_path):
    lines = exported.read_text().splitlines()
    assert len(lines) == 1 + 24 and json.loads(lines[0])["task"] == "clinc150"
    sampled, from_file = tmp_path / "sampled", tmp_path / "file"
    spec = ["--n-way", "5", "--k-shot", "2", "--n-query", "3", "--episodes", "12", "--seeds", "0,4"]
    assert main([*RUN, "--task", "clinc150", *spec, "--out", str(sampled)]) == 0
    assert main([*RUN, "--task", "clinc150", "--episodes-file", str(exported),
                 "--out", str(from_file)]) == 0  # fmt: skip
    ours = {r["method"]: r for r in load_records(sampled)}
    theirs = {r["method"]: r for r in load_records(from_file)}
    digest = hashlib.sha256(exported.read_bytes()).hexdigest()
    for method, record in theirs.items():
        assert record["per_episode"] == ours[method]["per_episode"]
        assert record["episodes_fingerprint"] == ours[method]["episodes_fingerprint"]
        assert record["macro_f1"] == ours[method]["macro_f1"]
        assert record["episodes_file"] == digest and record["protocol"] == "file"
        assert record["seeds"] == [0, 4] and record["episodes_per_seed"] == 12
        assert record["key"] != ours[method]["key"]


def rewrite(source: Path, target: Path, line: int, change) -> Path:
    lines = source.read_text().splitlines()
    document = json.loads(lines[line - 1])
    change(document)
    lines[line - 1] = json.dumps(document)
    target.write_text("\n".join(lines) + "\n")
    return target


def test_a_fingerprint_that_does_not_match_is_refused_with_its_line(exported, tmp_path, capsys):
    def edit(episode):
        episode["query"][0]["text"] += " (edited)"

    bad = rewrite(exported, tmp_path / "bad.jsonl", 4, edit)
    code = main([*RUN, "--task", "clinc150", "--episodes-file", str(bad), "--out", str(tmp_path)])
    error = capsys.readouterr().err
    assert code == 2 and "bad.jsonl:4:" in error
    assert "fingerprint" in error and not list(tmp_path.glob("*.json"))


def test_labels_outside_the_classes_and_shared_items_are_refused_with_their_line(
    exported, tmp_path
):
    def relabel(episode):
        episode["support"][0]["label"] = "not_a_class"

    def share(episode):
        episode["query"][0] = episode["support"][0]

    with pytest.raises(DataFormatError, match=r"a.jsonl:3: .*not_a_class.*not among"):
        read_episodes(rewrite(exported, tmp_path / "a.jsonl", 3, relabel))
    with pytest.raises(DataFormatError, match=r"b.jsonl:5: .*both support and query"):
        read_episodes(rewrite(exported, tmp_path / "b.jsonl", 5, share))


def test_a_file_of_another_task_is_refused(exported, tmp_path, capsys):
    code = main(
        [*RUN, "--task", "huffpost", "--episodes-file", str(exported), "--out", str(tmp_path)]
    )
    assert code == 2 and "run it with --task clinc150" in capsys.readouterr().err


def few_nerd_line(words, labels, types):
    half = len(words) // 2
    return json.dumps({
        "support": {"word": words[:half], "label": labels[:half]},
        "query": {"word": words[half:], "label": labels[half:]}, "types": types,
    })  # fmt: skip


def test_few_nerd_episode_files_are_read_as_bio_and_run(tmp_path):
    assert bio_from_io(["O", "music", "music", "O", "band", "music"]) == (
        "O", "B-music", "I-music", "O", "B-band", "B-music")  # fmt: skip
    words = [["the", "beatles", "played"], ["bach", "wrote", "music"], ["queen", "rocked"],
             ["mozart", "composed"]]  # fmt: skip
    labels = [
        ["O", "band", "O"],
        ["musicalartist", "O", "O"],
        ["band", "O"],
        ["musicalartist", "O"],
    ]
    path = tmp_path / "fewnerd.jsonl"
    path.write_text(few_nerd_line(words, labels, ["band", "musicalartist"]) + "\n")
    (episode,) = read_episodes(path).episodes
    assert episode.classes == ("band", "musicalartist")
    assert [s.tags for s in episode.query] == [("B-band", "O"), ("B-musicalartist", "O")]
    out = tmp_path / "out"
    assert main(["run", "--task", "crossner-music", "--method", "nnshot-frozen", "--encoder",
                 "hashing-bow", "--episodes-file", str(path), "--no-progress", "--quiet",
                 "--out", str(out)]) == 0  # fmt: skip
    (record,) = load_records(out)
    assert record["n_episodes"] == 1 and record["protocol"] == "file"
    assert set(record["per_class"]) <= {"band", "musicalartist"}

    assert record["k_shot"] == 1  # each type has one support mention
    two = [["queen", "and", "abba"], ["bach", "met", "mozart"], ["queen", "rocked"], ["bach", "x"]]
    twice = [["band", "O", "band"], ["musicalartist", "O", "musicalartist"], ["band", "O"],
             ["musicalartist", "O"]]  # fmt: skip
    path.write_text(few_nerd_line(two, twice, ["band", "musicalartist"]) + "\n")
    spec, _, _ = FileEpisodes(read_episodes(path)).effective(EpisodeSpec(5, 1, 1), (0,), 1)
    assert (spec.n_way, spec.k_shot) == (2, 2)

    labels[1][0] = "person"  # not among the episode's types
    path.write_text(few_nerd_line(words, labels, ["band", "musicalartist"]) + "\n")
    with pytest.raises(DataFormatError, match=r"fewnerd.jsonl:1: .*person"):
        read_episodes(path)
