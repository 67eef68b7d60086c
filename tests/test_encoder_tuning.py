"""Trainable methods on a BERT given as a local model folder, with encoder layers unfrozen.

The model is a randomly initialised 2-layer BERT with the MiniLM tokenizer: the mechanics (which
weights train, what a checkpoint holds) without the cost of a real encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import BertModel

from benchmark.cli import main
from benchmark.engine.checkpoints import load_checkpoint

TRAINABLE = ("protonet-meta", "matching-net", "relation-net", "siamese-net", "maml", "fomaml",
             "reptile", "anil", "meta-sgd")  # fmt: skip


def test_every_trainable_method_tunes_the_top_layer_of_a_local_bert(tiny_bert, tmp_path):
    out = tmp_path / "out"
    args = [
        "run", "--task", "clinc150", "--method", ",".join(TRAINABLE), "--encoder", str(tiny_bert),
        "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "3", "--seeds", "1",
        "--no-progress", "--quiet", "--out", str(out), "--option", "unfreeze_layers=1",
        "--option", "meta_episodes=2", "--option", "meta_batch=2", "--option", "valid_every=0",
        "--option", "adapter_hidden=8", "--option", "inner_steps=2",
    ]  # fmt: skip
    assert main(args) == 0
    records = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert sorted(r["method"] for r in records) == sorted(TRAINABLE)
    initial = BertModel.from_pretrained(tiny_bert).state_dict()
    for record in records:
        assert record["status"] == "ok", record["error"]
        assert record["encoder"] == str(tiny_bert)
        state = load_checkpoint(Path(record["training"]["checkpoint"]))["state"]
        tuned = {k.split("model.", 1)[1]: v for k, v in state.items() if ".layer." in k}
        # only the top layer (index 1) is saved as trainable, and meta-training changed it
        assert tuned and all(k.startswith("encoder.layer.1.") for k in tuned), record["method"]
        changed = [k for k, v in tuned.items() if not torch.equal(v, initial[k])]
        assert changed, f"{record['method']} left the unfrozen layer unchanged"


def test_unfreezing_more_layers_than_the_encoder_has_is_refused_before_any_cell(
    tiny_bert, tmp_path, capsys
):
    args = [
        "run", "--task", "clinc150", "--method", "protonet-meta", "--encoder", str(tiny_bert),
        "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "2", "--seeds", "1",
        "--no-progress", "--quiet", "--out", str(tmp_path), "--option", "unfreeze_layers=3",
        "--option", "meta_episodes=2",
    ]  # fmt: skip
    assert main(args) == 2
    assert "unfreeze_layers=3: the encoder has 2 layers (use 0 to 2, or all)" in (
        capsys.readouterr().err
    )
    assert not list(tmp_path.glob("*.json"))  # refused before any cell ran
    args[args.index("unfreeze_layers=3")] = "unfreeze_layers=all"
    args[args.index("--encoder") + 1 : args.index("--encoder") + 2] = ["hashing-bow"]
    assert main(args) == 2
    assert "'hashing-bow' has no layers" in capsys.readouterr().err


def test_records_of_other_weights_are_never_reused(tiny_bert, tmp_path, capsys):
    """Weights re-trained in place (same files, same sizes) are another encoder revision."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "bert"
    shutil.copytree(tiny_bert, folder)
    args = [
        "run", "--task", "clinc150", "--method", "protonet", "--encoder", str(folder),
        "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "3", "--seeds", "1",
        "--no-progress", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    assert main(args) == 0
    assert "Loading weights" not in capsys.readouterr().err  # --no-progress: no bar at all
    assert main(args) == 0
    assert "0 cell(s) run, 1 reused" in capsys.readouterr().out
    weights = load_file(folder / "model.safetensors")
    save_file({k: v + 0.01 for k, v in weights.items()}, folder / "model.safetensors")
    assert main(args) == 0
    assert "1 cell(s) run, 0 reused" in capsys.readouterr().out
    revisions = {
        json.loads(p.read_text())["encoder_revision"] for p in (tmp_path / "out").glob("*.json")
    }
    assert len(revisions) == 2
