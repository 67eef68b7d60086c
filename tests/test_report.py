"""`fewshot-bench report`: files, embedded plots, paired tests, tables and bad input."""

from __future__ import annotations

import base64
import itertools
import re
from pathlib import Path

import pytest

from benchmark.analysis.plots import plot_throughput, series_colors, spans_decades
from benchmark.analysis.report import write_report
from benchmark.analysis.series import NOT_PAIRED, format_p, paired_comparisons, series_labels
from benchmark.analysis.tables import results_table, throughput_table
from benchmark.cli import main
from benchmark.core.methods import METHODS, MethodEntry
from benchmark.core.stats import paired_test
from benchmark.core.types import EpisodeSpec
from benchmark.engine.planning import RunOptions, Sweep
from benchmark.engine.store import load_records, spec_label
from benchmark.engine.sweep import run_sweep

from helpers import Exploding, NoConfig

PAIRED = ("protonet", "nearest-neighbour", "logistic-regression", "random")
PLOTS = ("scores-vs-shots.png", "scores-by-task.png", "paired-significance.png",
         "worst-classes.png", "throughput.png")  # fmt: skip
SPECS = (EpisodeSpec(5, 1, 5), EpisodeSpec(5, 5, 5))


def sweep(methods: tuple[str, ...], seeds: tuple[int, ...]) -> Sweep:
    return Sweep(("clinc150",), methods, SPECS, episodes=15, seeds=seeds, encoder="hashing-bow")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Four methods on the same episodes, and protonet-cosine on other seeds' episodes."""
    out = tmp_path_factory.mktemp("store")
    options = RunOptions(out=out, device="cpu", progress=False)
    assert run_sweep(sweep(PAIRED, (0, 1)), options).failed == 0
    assert run_sweep(sweep(("protonet-cosine",), (2,)), options).failed == 0
    write_report(out)
    return out


def section(markdown: str, title: str) -> str:
    return markdown.split(f"\n## {title}")[1].split("\n## ")[0]


def table_rows(text: str) -> list[dict[str, str]]:
    """The rows of the first github-format table in `text`, by header."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def test_report_writes_markdown_pngs_and_a_self_contained_html(store):
    out = store / "report"
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name in PLOTS:
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert f"]({name})" in markdown
        assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page
    assert len(re.findall(r"<img ", page)) == len(PLOTS)
    links = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]*)""", page, flags=re.I)
    assert len(links) == len(PLOTS)
    assert all(link.startswith("data:image/png;base64,") for link in links)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_summary_states_what_stands_behind_the_report(store):
    summary = section((store / "report/report.md").read_text(), "Summary")
    records = load_records(store)
    assert "- records: 10 (10 ok, 0 failed)" in summary
    assert "- tasks (1): clinc150" in summary
    assert "- methods (5): logistic-regression, nearest-neighbour, protonet, protonet-cosine" in (
        summary
    )
    assert "- episodes: 270 scored in all; per cell 30 (8 cells), 15 (2 cells)" in summary
    assert "- seeds: 0, 1 (8 cells), 2 (2 cells)" in summary
    revision = next(r["encoder_revision"] for r in records if r["encoder"])
    assert f"hashing-bow ({revision}) (8 cells)" in summary
    assert f"{records[0]['git_commit']} (10 cells)" in summary
    assert f"torch {records[0]['versions']['torch']}" in summary
    assert "Failed cells" not in (store / "report/report.md").read_text()


def test_markdown_embeds_the_results_and_throughput_tables(store):
    markdown = (store / "report/report.md").read_text()
    records = load_records(store)
    assert results_table(records) in markdown
    assert throughput_table(records) in markdown
    rows = table_rows(section(markdown, "Results"))
    assert len(rows) == len(records)
    for record in records:
        score = f"{100 * record['mean']:.2f} ± {100 * record['ci95']:.2f}"
        (row,) = [
            r for r in rows if (r["method"], r["K"]) == (record["method"], str(record["k_shot"]))
        ]
        assert row["mean ± 95% CI (%)"] == score


def test_significance_table_holds_paired_tests_of_the_per_episode_scores(store):
    records = load_records(store)
    rows = table_rows(section((store / "report/report.md").read_text(), "Paired significance"))
    by_pair = {(r["spec"], r["A"], r["B"]): r for r in rows}
    assert len(rows) == 2 * 10  # 5 methods per spec: 10 pairs
    paired = 0
    for spec in SPECS:
        cell = sorted((r for r in records if r["k_shot"] == spec.k_shot), key=lambda r: r["method"])
        for a, b in itertools.combinations(cell, 2):
            row = by_pair[(spec_label(a), a["method"], b["method"])]
            if a["episodes_fingerprint"] != b["episodes_fingerprint"]:
                continue
            paired += 1
            expected = paired_test(a["per_episode"], b["per_episode"])
            assert row["p (paired t)"] == format_p(expected.p_value)
            assert row["episodes"] == "30"
            assert row["A - B (points) ± 95% CI"].startswith(
                f"{100 * expected.mean_difference:+.2f}"
            )
    assert paired == 2 * 6
    random_rows = [r for r in rows if "random" in (r["A"], r["B"]) and r["episodes"] == "30"]
    assert len(random_rows) == 6
    assert all(float(r["p (paired t)"]) < 1e-6 for r in random_rows)  # far below chance


def test_pairs_on_different_episodes_are_marked_not_paired_and_never_tested(store):
    records = [r for r in load_records(store) if r["status"] == "ok"]
    comparisons = paired_comparisons(records, series_labels(records))
    cosine = [c for c in comparisons if "protonet-cosine" in (c.a, c.b)]
    assert len(cosine) == 8 and all(c.test is None for c in cosine)
    assert all(c.test is not None for c in comparisons if c not in cosine)
    rows = table_rows(section((store / "report/report.md").read_text(), "Paired significance"))
    marked = [r for r in rows if "protonet-cosine" in (r["A"], r["B"])]
    assert len(marked) == 8
    assert all(r["A - B (points) ± 95% CI"] == NOT_PAIRED for r in marked)
    assert all(r["p (paired t)"] == "-" and r["episodes"] == "-" for r in marked)


def test_repeated_methods_get_labels_that_tell_them_apart(store):
    records = load_records(store)
    again = [{**r, "key": r["key"][::-1], "seeds": [7]} for r in records if r["method"] == "random"]
    labels = series_labels(records + again)
    assert {labels[r["key"]] for r in again} == {"random [seeds 7 x 15]"}
    assert {labels[r["key"]] for r in records if r["method"] == "random"} == {
        "random [seeds 0,1 x 15]"
    }
    assert labels[records[0]["key"]] == records[0]["method"]


def test_another_task_version_or_an_identical_twin_is_told_apart(store):
    records = [r for r in load_records(store) if r["method"] == "random"]
    bumped = [{**r, "key": "x" + r["key"][1:], "task_version": "9"} for r in records]
    twins = [{**r, "key": "y" + r["key"][1:]} for r in records]
    labels = series_labels(records + bumped)
    assert {labels[r["key"]] for r in bumped} == {"random [v9]"}
    assert len({labels[r["key"]] for r in records}) == 1
    labels = series_labels(records + twins)
    assert len({labels[r["key"]] for r in records + twins}) == 2 * len({r["key"] for r in records})


def test_throughput_axis_is_logarithmic_only_when_rates_span_decades(store):
    records = [r for r in load_records(store) if r["method"] in ("protonet", "random")]
    assert spans_decades([10.0, 1000.0]) and not spans_decades([10.0, 999.0])

    def scales(rates: dict[str, float]) -> set[str]:
        changed = [
            {**r, "throughput": {**r["throughput"], "episodes_per_s": rates[r["method"]]}}
            for r in records
        ]
        labels = series_labels(changed)
        figure = plot_throughput(changed, labels, series_colors(list(labels.values())))
        return {ax.get_yscale() for ax in figure.axes}

    assert scales({"protonet": 20.0, "random": 20_000.0}) == {"log"}
    assert scales({"protonet": 200.0, "random": 900.0}) == {"linear"}


def test_failed_cells_are_listed_with_their_last_error_line(tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS._entries, "exploding", MethodEntry("fails", NoConfig(), Exploding))
    options = RunOptions(out=tmp_path, device="cpu", progress=False)
    methods = ("exploding", "random")
    single = Sweep(("clinc150",), methods, SPECS[:1], 5, (0,), encoder="hashing-bow")
    assert run_sweep(single, options).failed == 1
    assert main(["report", str(tmp_path), "--format", "md"]) == 0
    markdown = (tmp_path / "report/report.md").read_text()
    assert "- records: 2 (1 ok, 1 failed)" in markdown
    (row,) = table_rows(section(markdown, "Failed cells (1)"))
    assert row == {
        "task": "clinc150",
        "method": "exploding",
        "spec": "5w-1s-5q",
        "last error line": f"RuntimeError: {Exploding.MESSAGE}",
    }
    assert not (tmp_path / "report/report.html").exists()
    assert "Paired significance" not in markdown  # one method: nothing to compare


def png_width(png: bytes) -> int:
    return int.from_bytes(png[16:20], "big")  # IHDR: the first chunk after the signature


def test_cli_writes_the_chosen_format_to_out_at_the_chosen_dpi(store, tmp_path, capsys):
    argv = ["report", str(store), "--out", str(tmp_path / "r"), "--format", "html", "--dpi", "50"]
    assert main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html"]
    assert capsys.readouterr().out.strip() == str(tmp_path / "r" / "report.html")
    page = (tmp_path / "r" / "report.html").read_text()
    first = base64.b64decode(re.search(r"data:image/png;base64,([^\"]+)", page).group(1))
    at_100 = png_width((store / "report" / PLOTS[0]).read_bytes())
    assert abs(2 * png_width(first) - at_100) <= 2


def test_bad_stores_fail_with_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"fewshot-bench: error: {tmp_path / 'missing'}: no such results directory"
    )
    assert main(["report", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no result records (*.json) here" in error
    (tmp_path / "broken.json").write_text('{"schema_version": 1,')
    assert main(["report", str(tmp_path)]) == 2
    assert "broken.json:1: not a valid result record" in capsys.readouterr().err
    for flags in (["--format", "pdf"], ["--dpi", "0"]):
        with pytest.raises(SystemExit):
            main(["report", str(tmp_path), *flags])
