"""The README's commands are the ones CI runs and the CLI has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def fenced_commands(text: str) -> list[str]:
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    commands = fenced_commands(README)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (REPO / ".ci/run").read_text()


def test_readme_starts_with_the_two_commands():
    first_two = fenced_commands(README)[:2]
    assert "python run_all.py" in first_two[0]
    assert "pytest" in first_two[1]
    assert all("torch==2.13.0" in c for c in first_two)


def test_every_fewshot_bench_subcommand_in_the_readme_exists():
    used = set(re.findall(r"fewshot-bench ([a-z]+)", README))
    helptext = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert used, "the README shows no fewshot-bench command"
    for command in used:
        assert command in helptext, f"README uses `fewshot-bench {command}`, which does not exist"


def test_default_suite_tasks_and_methods_are_registered_and_match():
    from benchmark.core.methods import METHODS
    from benchmark.core.registry import TASKS
    from run_all import DEFAULT_SUITE

    families = set()
    for line in DEFAULT_SUITE:
        card = TASKS.get(line[line.index("--task") + 1]).card
        families.add(card.family)
        kind = "tagging" if card.metric == "entity-f1" else "classification"
        for method in line[line.index("--method") + 1].split(","):
            assert kind in METHODS.get(method).kinds, (card.name, method)
    assert len(families) == 6, families  # one task of every family


def test_readme_method_example_runs_by_module_path(tmp_path, monkeypatch):
    from benchmark.cli import main

    source = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    assert len(source.strip().splitlines()) <= 30
    (tmp_path / "my_method.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    command = next(c for c in fenced_commands(README) if "my_method:L1Centroid" in c)
    argv = [
        *command.split()[1:], "--encoder", "hashing-bow", "--episodes", "20", "--seeds", "1",
        "--out", str(tmp_path / "runs"), "--no-progress", "--quiet",
    ]  # fmt: skip
    assert main(argv) == 0
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    mine = [r for r in records if r["method"] == "my_method:L1Centroid"]
    assert len(mine) == 2 and all(r["status"] == "ok" for r in mine)
    assert all(r["mean"] > 0.5 for r in mine)  # far above the 0.2 of chance


def test_a_method_installed_as_an_entry_point_runs_by_its_short_name(tmp_path):
    """A package that declares `[project.entry-points."fewshot_bench.methods"]` (here its
    installed metadata, written by hand) is listed and run as a built-in method."""
    source = re.search(r"```python\n(.*?)```", README, flags=re.S).group(1)
    (tmp_path / "my_method.py").write_text(source)
    dist = tmp_path / "my_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[fewshot_bench.methods]\nl1-centroid = my_method:L1Centroid\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    cli = [sys.executable, "-m", "benchmark.cli"]
    listed = subprocess.run([*cli, "list", "methods"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert "| l1-centroid " in listed.stdout
    out = tmp_path / "runs"
    run = subprocess.run(
        [*cli, "run", "--task", "clinc150", "--method", "l1-centroid", "--encoder", "hashing-bow",
         "--k-shot", "1", "--episodes", "20", "--seeds", "1", "--out", str(out), "--no-progress",
         "--quiet"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (record,) = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert record["method"] == "l1-centroid" and record["mean"] > 0.5
    wrong = subprocess.run(
        [*cli, "run", "--task", "crossner-music", "--method", "protonet", "--out", str(out)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert wrong.returncode == 2, wrong.stderr  # the kind error, with the plug-in installed
    assert "is a tagging task; methods for it: " in wrong.stderr and "ner-protonet" in wrong.stderr


def test_every_module_and_file_the_docs_name_exists():
    """`benchmark/engine/store.py`-style paths and `benchmark.core.methods`-style modules named in
    the README and CONTRIBUTING exist, so the docs follow the layout."""
    docs = README + (REPO / "CONTRIBUTING.md").read_text()
    paths = set(re.findall(r"`((?:benchmark|tasks|baselines|tests)/[\w/]+\.py)`", docs))
    modules = set(re.findall(r"`((?:benchmark|tasks|baselines)(?:\.\w+)+)", docs))
    assert paths and modules
    missing = [p for p in sorted(paths) if not (REPO / p).is_file()]
    for name in sorted(modules):
        parts = name.split(".")
        # the longest prefix that is a module; the rest must be attributes of it
        for cut in range(len(parts), 0, -1):
            base = REPO.joinpath(*parts[:cut])
            if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
                break
        else:
            missing.append(name)
            continue
        if cut < len(parts):
            module = __import__(".".join(parts[:cut]), fromlist=["_"])
            if not hasattr(module, parts[cut]):
                missing.append(name)
    assert missing == []
