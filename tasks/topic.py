"""Topic classification: HuffPost headlines, Reuters-21578 and 20 Newsgroups, with the class
splits of Bao et al. 2020 (Few-shot Text Classification with Distributional Signatures)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from functools import partial
from pathlib import Path

from benchmark.core.datasource import hash_files, locate, read_maybe_gzipped
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.registry import TASKS
from benchmark.core.types import Task, TaskCard, TaskEntry
from tasks.common import accuracy_card, class_split_task, id_range
from tasks.files import read_jsonl_examples

VENDORED = Path(__file__).parent / "vendored"
BAO = "Bao et al. 2020, Few-shot Text Classification with Distributional Signatures, ICLR"
BAO_SPLIT = "Bao et al. 2020 (YujiaBao/Distributional-Signatures src/dataset/loader.py)"


def label_names(path: Path) -> dict[str, str]:
    """id -> lower-cased name; names shared by several ids get the id appended."""
    try:
        data = json.loads(read_maybe_gzipped(path))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise DataFormatError(path, None, 'expected an object of label id -> name, {"0": "..."}')
    names = {k: v.lower() for k, v in data.items()}
    repeated = {n for n, c in Counter(names.values()).items() if c > 1}
    return {k: f"{v} ({k})" if v in repeated else v for k, v in names.items()}


def _only_split_one(name: str, split_id: int) -> None:
    if split_id != 1:
        raise BenchmarkError(f"{name} has one standard class split (1), not {split_id}")


def _id_split_task(
    card: TaskCard, folder_name: str, data_dir: Path | None, split_id: int, ranges: dict
) -> Task:
    """HuffPost / Reuters: JSON lines (`raw` text, integer `label`), split by id ranges."""
    _only_split_one(card.name, split_id)
    data_file = f"{card.name}.json"
    vendored = VENDORED / card.name if card.vendored else None
    folder = locate(folder_name, data_file, data_dir, vendored)
    names = label_names(folder / "label_names.json")
    rows = read_jsonl_examples(folder / data_file, "raw", "label")
    unknown = sorted({e.label for e in rows} - set(names))
    if unknown:
        raise DataFormatError(folder / "label_names.json", None, f"no names for labels {unknown}")
    examples = [replace(e, text=" ".join(e.text.split()), label=names[e.label]) for e in rows]
    nameless = [i for span in ranges.values() for i in id_range(*span) if i not in names]
    if nameless:
        raise DataFormatError(folder / "label_names.json", None, f"no names for ids {nameless}")
    splits = {split: [names[i] for i in id_range(*span)] for split, span in ranges.items()}
    return class_split_task(
        card,
        examples,
        splits,
        split_name="bao2020",
        where=folder,
        data_sha256=hash_files([folder / data_file, folder / "label_names.json"]),
        data_path=folder,
    )


NEWSGROUP_SPLITS = {
    "train": ("sci.", "rec."),
    "valid": ("comp.",),
    "test": ("talk.", "alt.atheism", "misc.forsale", "soc.religion.christian"),
}


def strip_headers(post: str) -> str:
    """The Subject line and body of a news post; the other header lines are dropped."""
    head, _, body = post.partition("\n\n")
    subject = next((line[9:] for line in head.splitlines() if line.startswith("Subject: ")), "")
    return " ".join(f"{subject}\n{body}".split())


def load_20newsgroups(card: TaskCard, data_dir: Path | None, split_id: int) -> Task:
    """20 Newsgroups (bydate train + test pooled), split by hierarchy as Bao et al. did."""
    _only_split_one(card.name, split_id)
    folder = locate("20newsgroups", "20news-bydate-train.jsonl", data_dir, None)
    files = [folder / f"20news-bydate-{part}.jsonl" for part in ("train", "test")]
    examples = []
    for path in files:
        for row in read_jsonl_examples(path, "text", "label", uid_prefix=path.stem[14:]):
            text = strip_headers(row.text)
            if text:
                examples.append(replace(row, text=text))
    labels = sorted({e.label for e in examples})
    splits = {
        split: [label for label in labels if label.startswith(prefixes)]
        for split, prefixes in NEWSGROUP_SPLITS.items()
    }
    return class_split_task(
        card,
        examples,
        splits,
        split_name="bao2020-hierarchy",
        where=folder,
        data_sha256=hash_files(files),
        data_path=folder,
        notes=("headers dropped except Subject",),
    )


_card = partial(accuracy_card, "topic", class_splits=BAO_SPLIT)


HUFFPOST = _card(
    "huffpost",
    "HuffPost headlines 2012-2018, 41 categories x 900; class split 20/5/16",
    "CC BY 4.0 (News Category Dataset, Misra 2018); this processed copy states none",
    f"Misra 2018, News Category Dataset; {BAO}",
    "github.com/ws-jiang/MetaPrompter_public data/huffpost.json @dea17d5 (Bao et al.'s processing)",
    {"train": (20, 17869), "valid": (5, 4498), "test": (16, 14339)},
    vendored=True,
)
REUTERS = _card(
    "reuters",
    "Reuters-21578 news articles, 31 topics x 20 (long documents); class split 15/5/11",
    "Reuters-21578 distribution terms (research use); this copy states none",
    f"Lewis, Reuters-21578; {BAO}",
    "github.com/xport456a547/fsnopretrain data/reuters.json @c2acf6c",
    {"train": (15, 299), "valid": (5, 100), "test": (11, 219)},
)
NEWSGROUPS = _card(
    "20newsgroups",
    "20 Newsgroups bydate (train + test pooled), Subject + body; split by hierarchy 8/5/7",
    "none stated",
    f"Lang 1995, NewsWeeder; {BAO}",
    "github.com/julenminer/mlnn_P65 20news-bydate @7393be6 (converted to JSON lines)",
    {"train": (8, 7925), "valid": (5, 4874), "test": (7, 6020)},
    class_splits="Bao et al. 2020 by hierarchy: sci.+rec. / comp. / the rest",
)

TASKS.add(
    "huffpost",
    TaskEntry(
        HUFFPOST,
        lambda d, s: _id_split_task(
            HUFFPOST, "huffpost", d, s, {"train": (0, 19), "valid": (20, 24), "test": (25, 40)}
        ),
    ),
)
TASKS.add(
    "reuters",
    TaskEntry(
        REUTERS,
        lambda d, s: _id_split_task(
            REUTERS,
            "reuters_fewshot",
            d,
            s,
            {"train": (0, 14), "valid": (15, 19), "test": (20, 30)},
        ),
    ),
)
TASKS.add("20newsgroups", TaskEntry(NEWSGROUPS, lambda d, s: load_20newsgroups(NEWSGROUPS, d, s)))
