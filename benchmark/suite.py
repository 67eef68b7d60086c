"""The default suite: one task of every family, 1- and 5-shot, with every built-in frozen-embedding
method (`python run_all.py` runs it; `fewshot-bench perf` times it). Each line of DEFAULT_SUITE is
one `fewshot-bench run`; flags given to `run_default_suite` are appended to every line and
override the suite's."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from benchmark.cli import main

CLASSIFIERS = "protonet,protonet-cosine,nearest-neighbour,logistic-regression,majority,random"
TAGGERS = "ner-protonet,nnshot"
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


def run_default_suite(argv: Sequence[str]) -> int:
    """Run every line of the suite (a failing line does not stop the others), then the table."""
    codes = [
        main(["run", *line, *COMMON, "--skip-unavailable", "--quiet", *argv])
        for line in DEFAULT_SUITE
    ]
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out", default=COMMON[-1])
    codes.append(main(["results", out.parse_known_args(argv)[0].out]))
    return max(codes)


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
SUITE_VERSIONS = {"quick": 1, "default": 1}
