"""The named suites: versioned lists of `fewshot-bench run` lines with their common flags.

The default suite (`python run_all.py`) runs one task of every family, 1- and 5-shot, with every
built-in frozen-embedding method; the quick suite is what the regression gate and submissions run.
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSIFIERS = "protonet,protonet-cosine,nearest-neighbour,logistic-regression,majority,random"
TAGGERS = "ner-protonet-frozen,nnshot-frozen"
COMMON = ("--k-shot", "1,5", "--episodes", "200", "--seeds", "5", "--out", "runs/default")
DEFAULT_SUITE: tuple[tuple[str, ...], ...] = (
    ("--task", "clinc150", "--method", CLASSIFIERS, "--n-way", "5", "--n-query", "15"),
    ("--task", "huffpost", "--method", CLASSIFIERS, "--n-way", "5", "--n-query", "15"),
    ("--task", "sst2", "--method", CLASSIFIERS, "--n-way", "2", "--n-query", "15"),
    ("--task", "fewrel-wiki", "--method", CLASSIFIERS, "--n-way", "5", "--n-query", "15"),
    ("--task", "crossner-music", "--method", TAGGERS, "--n-way", "5", "--n-query", "5"),
    ("--task", "clinc150-domain-shift", "--method", CLASSIFIERS, "--n-way", "5", "--n-query", "15"),
    ("--task", "arsc", "--method", CLASSIFIERS),
)  # fmt: skip


# The quick suite: the regression gate (`fewshot-bench check`) and the default of
# `fewshot-bench submit`. Vendored tasks only, frozen methods, 5 queries per class, one seed of
# 100 episodes: about 10,400 texts to encode, well under a minute on a 2-core CPU.
QUICK_METHODS = "protonet,logistic-regression,nearest-neighbour"
QUICK_COMMON = ("--n-way", "5", "--k-shot", "1,5", "--n-query", "5", "--episodes", "100",
                "--seeds", "1")  # fmt: skip
QUICK_SUITE: tuple[tuple[str, ...], ...] = (
    ("--task", "clinc150", "--method", QUICK_METHODS),
    ("--task", "huffpost", "--method", QUICK_METHODS),
)


# Bump a suite's version whenever its lines or common flags change: baselines and bundles record
# it, and those of another version are refused.
SUITE_VERSIONS = {"quick": 1, "default": 2}  # default 2: the frozen NER methods renamed -frozen


@dataclass(frozen=True)
class Suite:
    """A named, versioned list of `fewshot-bench run` lines, each run with the common flags."""

    name: str
    version: int
    lines: tuple[tuple[str, ...], ...]
    common: tuple[str, ...]


SUITES: dict[str, Suite] = {
    "quick": Suite("quick", SUITE_VERSIONS["quick"], QUICK_SUITE, QUICK_COMMON),
    "default": Suite(
        "default", SUITE_VERSIONS["default"], DEFAULT_SUITE, (*COMMON, "--skip-unavailable")
    ),
}
