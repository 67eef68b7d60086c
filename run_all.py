"""The default suite: every built-in classification method on CLINC150, 5-way 1- and 5-shot.

Runs on a fresh clone with no network and no data directory (CLINC150 is vendored). Takes the
same flags as `fewshot-bench run`; flags given here override the suite's, e.g.
`python run_all.py --data-dir ../shared/data --device cuda --out runs/mine`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from benchmark.cli import main

DEFAULT_SUITE = (
    "--task", "clinc150",
    "--method", "protonet,protonet-cosine,nearest-neighbour,logistic-regression,majority,random",
    "--n-way", "5",
    "--k-shot", "1,5",
    "--n-query", "15",
    "--episodes", "200",
    "--seeds", "5",
    "--out", "runs/default",
)  # fmt: skip


def run_default_suite(argv: Sequence[str]) -> int:
    """`fewshot-bench run` with the default suite's flags, then the caller's."""
    return main(["run", *DEFAULT_SUITE, *argv])


if __name__ == "__main__":
    sys.exit(run_default_suite(sys.argv[1:]))
