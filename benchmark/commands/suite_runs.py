"""Running a named suite: its lines as `run` flags, the cells it must produce (with their
episode fingerprints), and its records."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.analysis.cells import cell_id
from benchmark.commands.arguments import (
    add_cache_dir,
    add_data_dir,
    add_device,
    add_no_progress,
    parse_run_line,
)
from benchmark.core.episodes import combined_fingerprint
from benchmark.core.errors import BenchmarkError
from benchmark.core.methods import resolve_method
from benchmark.core.suites import (
    SUITES,
    Suite,
)
from benchmark.engine.planning import RunOptions, Sweep, plan
from benchmark.engine.store import Record
from benchmark.engine.sweep import EpisodeSets, run_sweep


@dataclass(frozen=True)
class SuiteRun:
    """A suite with the method that replaces its own (None keeps them) and how to run it."""

    suite: Suite
    method: str | None = None
    options: tuple[str, ...] = ()
    device: str = "cpu"
    data_dir: str | None = None
    cache_dir: str | None = None
    progress: bool = True

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, method: str | None = None, options: Sequence[str] = ()
    ) -> SuiteRun:
        """The run the flags of `add_suite_run_arguments` describe."""
        return cls(SUITES[args.suite], method, tuple(options), args.device, args.data_dir,
                   args.cache_dir, not args.no_progress)  # fmt: skip

    def sweeps(self, out: Path) -> list[tuple[Sweep, RunOptions]]:
        """Each applicable line parsed as `fewshot-bench run` flags, writing to `out` (forced)."""
        lines = [line for line in self.suite.lines if self._applies(line)]
        if not lines:
            raise BenchmarkError(
                f"method {self.method!r} handles none of the task kinds of suite "
                f"{self.suite.name!r}"
            )
        return [parse_run_line(self._argv(line, out)) for line in lines]

    def _applies(self, line: Sequence[str]) -> bool:
        """A line applies to the method if its own methods share a task kind with it."""
        if self.method is None:
            return True
        kinds = set(resolve_method(self.method).kinds)
        own = line[line.index("--method") + 1].split(",")
        return any(kinds & set(resolve_method(name).kinds) for name in own)

    def _argv(self, line: Sequence[str], out: Path) -> list[str]:
        argv = [*line, *self.suite.common, "--out", str(out), "--force"]
        argv += ["--device", self.device]
        if self.method is not None:
            argv += ["--method", self.method]  # the last --method wins
        for option in self.options:
            argv += ["--option", option]
        if self.data_dir:
            argv += ["--data-dir", self.data_dir]
        if self.cache_dir:
            argv += ["--cache-dir", self.cache_dir]
        if not self.progress:
            argv.append("--no-progress")
        return argv


def expected_cells(run: SuiteRun) -> dict[str, Record]:
    """Every cell the run must produce, by cell id: identity, episode fingerprint and task kind.

    Episodes are sampled, nothing is encoded or fitted.
    """
    cells: dict[str, Record] = {}
    for sweep, options in run.sweeps(Path(tempfile.gettempdir())):
        episode_sets = EpisodeSets()
        for cell in plan(sweep, options):
            fingerprint = combined_fingerprint(episode_sets.of(cell))
            entry = {**cell.identity, "episodes_fingerprint": fingerprint, "kind": cell.task.kind}
            cells[cell_id(entry)] = entry
    return cells


def run_records(run: SuiteRun, out: Path) -> list[Record]:
    """Run every line of the suite into `out` and return the records."""
    records: list[Record] = []
    for sweep, options in run.sweeps(out):
        records += run_sweep(sweep, options).records
    return records


def add_suite_run_arguments(parser: argparse.ArgumentParser, device: str) -> None:
    """How a command runs a suite (`check`, `submit`): which suite, on which device (default
    `device`), with which data and cache, with or without progress bars."""
    parser.add_argument(
        "--suite", choices=sorted(SUITES), default="quick", help="which suite (default quick)"
    )
    add_device(parser, default=device)
    add_data_dir(parser, "read by the default suite's tasks")
    add_cache_dir(parser)
    add_no_progress(parser)
