"""In-context learning speed: the demonstrations' key/value cache reused for every query and
label (`cached_log_likelihoods`) against one full forward pass per (query, label), on one
5-way 5-shot CLINC150 episode with 15 queries per class, with equal log-likelihoods.

No generative LM ships on the package index, so the model is a randomly initialised GPT-2
(4 layers, 256-d) with a byte-level BPE tokenizer trained on CLINC150's training texts: the
speed of the two ways does not depend on the weights, and the ratio grows with model size.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from baselines.icl import ICLConfig, InContextLearning
from baselines.lm_scoring import PromptTokens, cached_log_likelihoods, naive_log_likelihoods
from benchmark.core.methods import MethodContext
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSpec
from benchmark.engine.devices import peak_memory_mb, reset_peak_memory
from benchmark.perf.episodes import best_of
from benchmark.perf.measurement import Measurement, timed

ICL_SPEC = EpisodeSpec(5, 5, 15)
CORPUS_SPEC = EpisodeSpec(10, 10, 0, "train")  # 20 of these: the tokenizer's training texts


def random_gpt2(folder: Path, texts: list[str]) -> Path:
    """A random 4-layer GPT-2 and a BPE tokenizer trained on `texts`, saved in `folder`."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=4000, special_tokens=["<|endoftext|>"],
                            show_progress=False)  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    torch.manual_seed(0)
    config = GPT2Config(n_layer=4, n_embd=256, n_head=4, n_positions=1024,
                        vocab_size=len(tokenizer), eos_token_id=0, bos_token_id=0)  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def measure_icl(device: str, repeats: int = 3, spec: EpisodeSpec = ICL_SPEC) -> Measurement:
    """The row: one episode's prompt scored both ways (best of `repeats` for ours)."""
    task = TASKS.get("clinc150").load(None, 1)
    train = task.split("train")
    corpus = [x.text for i in range(20) for x in train.episode(CORPUS_SPEC, 0, i).support]
    episode = task.split("test").episode(spec, 0, 0)
    with tempfile.TemporaryDirectory(prefix="fewshot-icl-") as scratch:
        folder = random_gpt2(Path(scratch), corpus)
        method = InContextLearning(ICLConfig(lm=str(folder)), MethodContext(None, device))
    queries = [e.text for e in episode.query]
    order = list(range(len(episode.support)))
    plan = method.plan(episode.support, queries, order)
    prefix = [t for d in plan.demonstrations for t in d]
    prompt = PromptTokens(prefix, [method.builder.query(q) for q in queries], plan.verbalizers)
    model = method.model
    cached_log_likelihoods(model, prompt)  # warm-up
    reset_peak_memory(device)
    # both return CPU tensors, so CUDA work is finished when the clock stops
    ours, ours_s = best_of(repeats, lambda: cached_log_likelihoods(model, prompt))
    peak = peak_memory_mb(device)
    naive, naive_s = timed(lambda: naive_log_likelihoods(model, prompt), device)
    gap = float((ours - naive).abs().max())
    ratio = naive_s / ours_s
    pairs = len(queries) * len(plan.verbalizers)
    return Measurement(
        f"icl scoring, {spec.label} CLINC150 ({len(prefix)}-token prompt, {pairs} query-label "
        "pairs; random 4-layer GPT-2)",
        "demonstrations' KV cache reused, queries packed",
        "a full forward per (query, label)",
        ours_s,
        naive_s,
        ratio,
        ">= 5x, log-likelihoods to 1e-4",
        ratio >= 5 and gap <= 1e-4,
        f"max log-likelihood difference {gap:.1e}; peak "
        f"{'CUDA allocated' if device.startswith('cuda') else 'process RSS'} {peak:.0f} MB",
        gap <= 1e-4,
    )
