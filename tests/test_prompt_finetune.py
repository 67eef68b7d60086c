"""`prompt-finetune` mechanics on a tiny random BERT masked LM: cloze scores by hand, the model
learns the support set and restarts from its pretrained weights every episode, refusals."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from tiny_lms import tiny_causal_lm, tiny_masked_lm

from baselines.prompt_finetune import PromptFinetune
from baselines.prompting import readable
from benchmark.cli import main
from benchmark.core.errors import BenchmarkError, SpecError
from benchmark.core.methods import MethodContext, resolve_method
from benchmark.core.registry import TASKS
from benchmark.core.types import Example
from benchmark.engine.store import load_records

CORPUS = ["it was great", "it was terrible", "the cat sat on the mat", "stocks fell", "rain"]
SUPPORT = [
    Example("s0", "the cat sat on the mat", "pets"),
    Example("s1", "stocks fell sharply", "finance"),
    Example("s2", "the cat sat", "pets"),
    Example("s3", "stocks rose", "finance"),
]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny masked LM, its vocabulary also holding CLINC150's test label names."""
    labels = TASKS.get("clinc150").load(None, 1).split("test").labels()
    return tiny_masked_lm(tmp_path_factory.mktemp("tiny-mlm"), [*CORPUS, *map(readable, labels)])


def method(folder: Path, **options: object) -> PromptFinetune:
    entry = resolve_method("prompt-finetune")
    config = dataclasses.replace(entry.config, lm=str(folder), **options)
    return entry.build(config, MethodContext(None))


def test_label_scores_are_log_probabilities_at_the_masks(bert: Path) -> None:
    pf = method(bert)
    labels = [pf.cloze.words("great"), pf.cloze.words("terrible cat")]
    assert len(labels[0]) == 1 and len(labels[1]) > 1
    scores = pf.scores(["stocks fell"], labels)
    tokenizer = pf.cloze.tokenizer
    for label, tokens in enumerate(labels):
        ids, start = pf.cloze.build("stocks fell", len(tokens))
        assert ids[start : start + len(tokens)] == [tokenizer.mask_token_id] * len(tokens)
        assert tokenizer.decode(ids, skip_special_tokens=False).startswith(
            "[CLS] stocks fell it was"
        )
        with torch.no_grad():
            logits = pf.model(input_ids=torch.tensor([ids])).logits[0]
        by_hand = torch.stack(
            [logits[start + t].log_softmax(-1)[tok] for t, tok in enumerate(tokens)]
        ).mean()
        assert scores[0, label].item() == pytest.approx(by_hand.item(), abs=1e-5)


def test_fine_tuning_learns_the_support_and_restarts_every_episode(bert: Path) -> None:
    pf = method(bert, steps=30, lr=1e-3, batch_size=4)
    names = sorted({e.label for e in SUPPORT})
    labels = pf.label_tokens(names)
    texts = [e.text for e in SUPPORT]
    targets = torch.tensor([names.index(e.label) for e in SUPPORT])
    before = torch.nn.functional.cross_entropy(pf.scores(texts, labels), targets).item()
    pretrained = {k: v.clone() for k, v in pf.model.state_dict().items()}
    predictor = pf.fit(SUPPORT, random.Random(0))
    with torch.no_grad():
        after = torch.nn.functional.cross_entropy(pf.scores(texts, labels), targets).item()
    assert after < before / 2
    assert predictor.predict(texts) == [e.label for e in SUPPORT]
    tuned = {k: v.clone() for k, v in pf.model.state_dict().items()}
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in pretrained)
    pf.fit(SUPPORT, random.Random(0))  # restarts from the pretrained weights: the same result
    assert all(torch.equal(pf.model.state_dict()[k], tuned[k]) for k in tuned)


def test_bad_models_and_verbalizers_are_refused(bert: Path, tmp_path: Path) -> None:
    gpt = tiny_causal_lm(tmp_path / "gpt", CORPUS)
    with pytest.raises(BenchmarkError, match=r"needs a masked language model.*GPT2LMHeadModel"):
        method(gpt)
    words = tmp_path / "words.tsv"
    words.write_text("pets\t\u200b\nfinance\tstocks\n")
    with pytest.raises(SpecError, match="of label 'pets' tokenises to nothing"):
        method(bert, verbalizers=str(words)).label_tokens(["finance", "pets"])
    with pytest.raises(BenchmarkError, match=r"needs \{text\} once and \{mask\} once"):
        method(bert, template="{text} was great")


def test_cli_runs_prompt_finetune_with_its_model_in_the_cell(bert: Path, tmp_path: Path) -> None:
    args = [
        "run", "--task", "clinc150", "--method", "prompt-finetune", "--lm", str(bert),
        "--n-way", "3", "--k-shot", "1", "--n-query", "2", "--episodes", "2", "--seeds", "1",
        "--no-progress", "--quiet", "--option", "steps=3", "--out", str(tmp_path),
    ]  # fmt: skip
    assert main(args) == 0
    (record,) = load_records(tmp_path)
    assert record["status"] == "ok", record["error"]
    assert record["method_config"]["steps"] == 3 and record["method_config"]["lm"] == str(bert)
    assert record["lm_revision"].startswith("local-") and len(record["per_episode"]) == 2
