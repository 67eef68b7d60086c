"""The default suite: one task of every family, 1- and 5-shot, with every built-in method.

Runs on a fresh clone with no network and no data directory: CLINC150, HuffPost, FewRel val_wiki
and CrossNER music are vendored. SST-2 and ARSC (sentiment) are not (no permissive license), so
they run only when a data directory is given (`--data-dir ../shared/data`) and are otherwise
skipped with a note. Each line of DEFAULT_SUITE is one `fewshot-bench run`; flags given to this
script are appended to every line and override the suite's, e.g.
`python run_all.py --data-dir ../shared/data --device cuda --out runs/gpu`.
At the end, `fewshot-bench results` prints every record of the output folder.
"""

from __future__ import annotations

import sys

from benchmark.commands.running import run_default_suite
from benchmark.core.suites import COMMON, DEFAULT_SUITE

__all__ = ["COMMON", "DEFAULT_SUITE", "run_default_suite"]

if __name__ == "__main__":
    sys.exit(run_default_suite(sys.argv[1:]))
