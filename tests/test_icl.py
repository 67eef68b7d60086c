"""`icl` mechanics on a tiny random GPT-2: cached scores equal the naive ones, calibration,
truncation by whole demonstrations, no label leakage, reruns, and refusals."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import torch
from tiny_lms import tiny_causal_lm

from baselines.icl import InContextLearning, calibrated
from baselines.lm_scoring import PromptTokens, cached_log_likelihoods, naive_log_likelihoods
from baselines.prompting import demonstration_order, fit_demonstrations, readable
from benchmark.cli import main
from benchmark.core.errors import BenchmarkError, SpecError
from benchmark.core.methods import MethodContext, resolve_method
from benchmark.core.types import Episode, Example
from benchmark.engine.store import load_records

CORPUS = [
    "Input: Label: N/A", "the cat sat on the mat", "dogs bark loudly at night",
    "stocks fell sharply today", "rain is expected tomorrow", "todo list alarm weather",
    "positive negative finance sport",
]  # fmt: skip
SUPPORT = [
    Example("s0", "the cat sat on the mat", "pets"),
    Example("s1", "stocks fell sharply", "finance"),
    Example("s2", "rain tomorrow", "weather"),
    Example("s3", "dogs bark at night", "pets"),
    Example("s4", "stocks rose today", "finance"),
    Example("s5", "sunny and warm", "weather"),
]
QUERIES = ["a cat on a mat", "shares fell today", "rain is expected", "x"]


@pytest.fixture(scope="module")
def gpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-gpt2"), CORPUS)


def icl(gpt: Path, **options: object) -> InContextLearning:
    entry = resolve_method("icl")
    return entry.build(
        dataclasses.replace(entry.config, lm=str(gpt), **options), MethodContext(None)
    )


def prompt_of(
    method: InContextLearning, verbalizers: list[list[int]] | None = None
) -> PromptTokens:
    plan = method.plan(SUPPORT, QUERIES, list(range(len(SUPPORT))))
    prefix = [t for d in plan.demonstrations for t in d]
    queries = [method.builder.query(q) for q in QUERIES]
    return PromptTokens(prefix, queries, verbalizers or plan.verbalizers)


@pytest.mark.parametrize("max_batch", [1, 3, 16])
def test_cached_scores_equal_one_forward_per_query_and_label(gpt: Path, max_batch: int) -> None:
    method = icl(gpt)
    # one-, two- and three-token verbalizers, two sharing their leading tokens
    verbalizers = [[5], [7, 9], [7, 9, 11], [7, 12], [30]]
    prompt = prompt_of(method, verbalizers)
    cached = cached_log_likelihoods(method.model, prompt, max_batch)
    naive = naive_log_likelihoods(method.model, prompt)
    assert cached.shape == (len(QUERIES), len(verbalizers))
    assert torch.allclose(cached, naive, atol=1e-4)
    assert len({len(q) for q in prompt.queries}) > 1  # padding was exercised


def test_calibration_divides_by_the_content_free_probabilities() -> None:
    likelihoods = torch.log(torch.tensor([[0.2, 0.1], [0.05, 0.15]]))  # unnormalised
    content_free = torch.log(torch.tensor([[0.3, 0.1], [0.1, 0.1]]))
    # p_cf = mean(softmax) = mean([0.75, 0.25], [0.5, 0.5]) = [0.625, 0.375]
    # query 0: p = [2/3, 1/3] -> [2/3 / 0.625, 1/3 / 0.375] = [1.0667, 0.8889]: label 0
    # query 1: p = [0.25, 0.75] -> [0.4, 2.0]: label 1
    out = calibrated(likelihoods, content_free)
    expected = torch.log(torch.tensor([[(2 / 3) / 0.625, (1 / 3) / 0.375], [0.4, 2.0]]))
    assert torch.allclose(out, expected, atol=1e-6)
    # calibration can flip a decision that the raw likelihoods make
    flipped = calibrated(
        torch.log(torch.tensor([[0.6, 0.4]])), torch.log(torch.tensor([[0.8, 0.2]]))
    )
    assert flipped.argmax().item() == 1
    assert torch.equal(calibrated(likelihoods, content_free[:0]), likelihoods)


def test_calibrated_method_scores_match_by_hand(gpt: Path) -> None:
    method = icl(gpt, calibrate=True, content_free="N/A|")
    plan = method.plan(SUPPORT, QUERIES, list(range(len(SUPPORT))))
    prefix = [t for d in plan.demonstrations for t in d]
    free = PromptTokens(prefix, [method.builder.query(t) for t in ["N/A", ""]], plan.verbalizers)
    raw = PromptTokens(prefix, [method.builder.query(q) for q in QUERIES], plan.verbalizers)
    p_cf = naive_log_likelihoods(method.model, free).softmax(-1).mean(0)
    by_hand = naive_log_likelihoods(method.model, raw).softmax(-1) / p_cf
    assert torch.allclose(method.scores(plan, QUERIES).exp(), by_hand, atol=1e-4)


def test_truncation_drops_whole_demonstrations_and_keeps_classes_balanced() -> None:
    labels = ["a", "a", "a", "b", "b", "c"]
    lengths = [10, 12, 8, 9, 20, 5]
    assert fit_demonstrations(lengths, labels, 100) == [0, 1, 2, 3, 4, 5]
    # a's last one goes (64 -> 56 tokens), then b's (a and b tie at two; the later one goes)
    assert fit_demonstrations(lengths, labels, 50) == [0, 1, 3, 5]
    assert fit_demonstrations(lengths, labels, 30) == [0, 3, 5]
    assert fit_demonstrations(lengths, labels, 23) == [2, 3, 5]  # each class's shortest one
    with pytest.raises(SpecError, match="shortest one of each class take 22 tokens, and 21"):
        fit_demonstrations(lengths, labels, 21)


def test_long_prompts_keep_whole_demonstrations_and_the_record_says_how_many(gpt: Path) -> None:
    method = icl(gpt, max_length=80)
    plan = method.plan(SUPPORT, QUERIES, list(range(len(SUPPORT))))
    demos = [method.builder.demonstration(e.text, readable(e.label)) for e in SUPPORT]
    assert 3 <= len(plan.demonstrations) < len(SUPPORT)
    assert all(d in demos for d in plan.demonstrations)  # whole pieces, none cut
    used = sum(len(d) for d in plan.demonstrations)
    longest = max(len(method.builder.query(q)) for q in QUERIES)
    assert used + longest + max(map(len, plan.verbalizers)) <= 80
    method.scores(plan, QUERIES)
    report = method.cell_report()
    assert report["demonstrations_given"] == [6] and report["demonstrations_kept"] == [
        len(plan.demonstrations)
    ]
    assert report["truncated_episodes"] == 1


def test_a_query_label_never_reaches_its_prompt(gpt: Path) -> None:
    """The demonstrations hold the support's texts, never a query's, and each query's part of
    the prompt ends at the label slot; the same rng gives the same predictions."""
    method = icl(gpt)
    predictor = method.fit(SUPPORT, random.Random(3))
    first = predictor.predict(QUERIES)
    again = method.fit(SUPPORT, random.Random(3)).predict(QUERIES)
    assert first == again
    plan = method.plan(SUPPORT, QUERIES, predictor.order)
    text = method.builder.tokenizer.decode([t for d in plan.demonstrations for t in d])
    assert all(q not in text for q in QUERIES[:3]) and "the cat sat on the mat" in text
    # each query's part of the prompt stops at the label slot: no label words follow it
    for query in QUERIES:
        assert method.builder.tokenizer.decode(method.builder.query(query)) == (
            f"Input: {query}\nLabel:"
        )


def test_demonstration_orders() -> None:
    rng = random.Random(0)
    assert demonstration_order(SUPPORT, "support", rng) == list(range(6))
    shuffled = demonstration_order(SUPPORT, "random", random.Random(0))
    assert sorted(shuffled) == list(range(6)) and shuffled == demonstration_order(
        SUPPORT, "random", random.Random(0)
    )
    robin = [
        SUPPORT[i].label for i in demonstration_order(SUPPORT, "round-robin", random.Random(1))
    ]
    assert len(set(robin[:3])) == 3 and robin[:3] == robin[3:]
    assert readable("todo_list") == "todo list" and readable("WORLD NEWS") == "world news"


def test_run_records_identity_and_reruns_give_identical_scores(gpt: Path, tmp_path: Path) -> None:
    args = [
        "run", "--task", "clinc150", "--method", "icl", "--lm", str(gpt), "--n-way", "3",
        "--k-shot", "1", "--n-query", "2", "--episodes", "3", "--seeds", "1", "--no-progress",
        "--quiet", "--option", "icl.order=round-robin",
    ]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    (a,), (b,) = load_records(tmp_path / "a"), load_records(tmp_path / "b")
    assert a["status"] == "ok", a["error"]
    assert a["per_episode"] == b["per_episode"] and a["key"] == b["key"]
    assert a["method_config"]["lm"] == str(gpt) and a["method_config"]["template"].startswith(
        "Input:"
    )
    assert a["lm_revision"].startswith("local-") and a["encoder"] is None
    assert a["method_report"]["demonstrations_kept"] == [3, 3, 3]
    other = [*args, "--out", str(tmp_path / "c"), "--option", "template={text} => {label}"]
    assert main(other) == 0
    (c,) = load_records(tmp_path / "c")
    assert c["key"] != a["key"]  # the template is part of the cell


def test_bad_models_and_prompts_are_refused(gpt: Path, tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"needs a causal .*BertModel"):
        icl(tiny_bert)
    with pytest.raises(BenchmarkError, match="needs a language model: --lm"):
        resolve_method("icl").build(resolve_method("icl").config, MethodContext(None))
    empty = tmp_path / "words.tsv"
    empty.write_text("pets\tcat\nfinance\t\nweather\train\n")
    with pytest.raises(SpecError, match="verbalizer of label 'finance' is empty"):
        icl(gpt, verbalizers=str(empty)).plan(SUPPORT, QUERIES, [0, 1, 2])
    method = icl(gpt, max_length=30)
    calls = []
    method.model.register_forward_hook(lambda *_: calls.append(1))
    query = (Example("q", "rain", "weather"),)
    episode = Episode(("pets", "finance", "weather"), tuple(SUPPORT), query, "f", index=4)
    with pytest.raises(
        SpecError, match=r"episode 4 of seed 0 \(context 30 tokens\).*take \d+ tokens"
    ):
        method.check_episodes([episode])
    assert calls == []  # refused before the model ran


def test_tagging_tasks_are_refused(
    gpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "run", "--task", "crossner-music", "--method", "icl", "--lm", str(gpt), "--n-way", "2",
        "--episodes", "1", "--no-progress", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code != 0
    error = capsys.readouterr().err
    assert "'icl' handles classification tasks" in error and "tagging" in error


def test_a_model_that_ignores_the_packed_mask_is_caught(gpt: Path) -> None:
    """The once-per-cell check: packed scores that differ from full forward passes fail."""
    method = icl(gpt)
    plan = method.plan(SUPPORT, QUERIES, list(range(len(SUPPORT))))
    method.scores(plan, QUERIES)
    assert method.checked
    method.checked = False
    prompt = prompt_of(method)
    wrong = cached_log_likelihoods(method.model, prompt)[0] + 0.1
    with pytest.raises(BenchmarkError, match=r"max gap 0\.1"):
        method.check_against_naive(prompt, wrong)


def test_icl_without_a_model_is_refused_before_any_cell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "run",
        "--task",
        "clinc150",
        "--method",
        "icl",
        "--episodes",
        "1",
        "--out",
        str(tmp_path),
    ]
    assert main(args) != 0
    assert "method 'icl' needs a language model: --lm NAME|PATH" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


def test_a_model_name_the_hub_cannot_serve_is_refused_with_the_name() -> None:
    with pytest.raises(
        BenchmarkError, match=r"(?s)language model 'nobody-here/no-lm'.*local model"
    ):
        icl(Path("nobody-here/no-lm"))
