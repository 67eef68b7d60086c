"""Sentiment: SST-5 and SST-2 at sentence level, and Amazon ARSC (Yu et al. 2018)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import Path

from benchmark.core.datasource import deduplicate, hash_files, locate, read_lines
from benchmark.core.episodes import make_episode
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import ClassPool, FixedEpisodes, GroupedPool, SplitPool, group_by_label
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSource, Example, Task, TaskCard, TaskEntry
from tasks.common import accuracy_card

SST5_NAMES = {
    "1": "very negative",
    "2": "negative",
    "3": "neutral",
    "4": "positive",
    "5": "very positive",
}
SST2_NAMES = {"1": "negative", "2": "negative", "4": "positive", "5": "positive"}
SST = (
    "Socher et al. 2013, Recursive Deep Models for Semantic Compositionality Over a Sentiment "
    "Treebank, EMNLP"
)
ARSC = "Yu et al. 2018, Diverse Few-Shot Text Classification with Multiple Metrics, NAACL"
ARSC_TARGETS = ("books", "dvd", "electronics", "kitchen_housewares")
ARSC_TASKS = ("t2", "t4", "t5")


def read_sst_file(path: Path, names: Mapping[str, str]) -> list[Example]:
    examples = []
    for number, line in enumerate(read_lines(path), start=1):
        tag, tab, text = line.partition("\t")
        if not tab or not tag.startswith("__label__") or tag[9:] not in SST5_NAMES:
            raise DataFormatError(path, number, "expected '__label__K<TAB>sentence' with K in 1..5")
        if tag[9:] in names:
            examples.append(Example(f"{path.stem[4:]}-{number:05d}", text.strip(), names[tag[9:]]))
    return examples


def split_pool(support: list[Example], query: list[Example]) -> tuple[SplitPool, int]:
    """Support and query sets over the same labels, query texts seen in support removed."""
    seen = {e.text for e in support}
    kept = [e for e in query if e.text not in seen]
    return SplitPool(group_by_label(support), group_by_label(kept)), len(query) - len(kept)


def load_sst(
    card: TaskCard, names: Mapping[str, str], data_dir: Path | None, split_id: int
) -> Task:
    """Support from the training sentences; queries from dev (valid) or test sentences."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    folder = locate("sst", "sst_train.txt", data_dir, None)
    parts = {}
    notes = []
    for part in ("train", "dev", "test"):
        parts[part], dropped = deduplicate(read_sst_file(folder / f"sst_{part}.txt", names))
        notes += [f"{part}: {note}" for note in dropped]
    valid, overlap_dev = split_pool(parts["train"], parts["dev"])
    test, overlap_test = split_pool(parts["train"], parts["test"])
    if overlap_dev or overlap_test:
        notes.append(f"dropped {overlap_dev} dev, {overlap_test} test sentence(s) also in train")
    splits: dict[str, EpisodeSource] = {
        "train": ClassPool(group_by_label(parts["train"])),
        "valid": valid,
        "test": test,
    }
    files = [folder / f"sst_{part}.txt" for part in ("train", "dev", "test")]
    return Task(card, splits, "sst-train/dev/test", folder, hash_files(files), tuple(notes))


def read_arsc_file(path: Path, uid_prefix: str) -> list[Example]:
    examples = []
    for number, line in enumerate(read_lines(path), start=1):
        text, tab, label = line.rpartition("\t")
        if not tab or label.strip() not in ("1", "-1") or not text.strip():
            raise DataFormatError(path, number, "expected '<review text><TAB>1' or '...<TAB>-1'")
        examples.append(Example(f"{uid_prefix}-{number:05d}", text.strip(), label.strip()))
    return examples


def load_arsc(card: TaskCard, data_dir: Path | None, split_id: int) -> Task:
    """12 fixed target episodes (5-shot support file, test file); 57 source tasks for training."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    folder = locate("amazon_arsc", "Amazon_few_shot/workspace.filtered.list", data_dir, None)
    folder = folder / "Amazon_few_shot"
    domains = [d.strip() for d in read_lines(folder / "workspace.filtered.list") if d.strip()]
    targets = [d.strip() for d in read_lines(folder / "workspace.target.list") if d.strip()]
    episodes = []
    used: list[Path] = []
    for index, (domain, task) in enumerate((d, t) for d in targets for t in ARSC_TASKS):
        stem = f"{domain}.{task}"
        support = read_arsc_file(folder / f"{stem}.train", f"{stem}.train")
        seen = {e.text for e in support}
        query = [
            e for e in read_arsc_file(folder / f"{stem}.test", f"{stem}.test") if e.text not in seen
        ]
        used += [folder / f"{stem}.train", folder / f"{stem}.test"]
        episodes.append(make_episode(sorted({e.label for e in support}), support, query, 0, index))
    groups = {}
    missing = []
    for domain in (d for d in domains if d not in targets):
        for task in ARSC_TASKS:
            stem = f"{domain}.{task}"
            files = [folder / f"{stem}.{part}" for part in ("train", "dev", "test")]
            present = [f for f in files if f.is_file()]
            missing += [f.name for f in files if not f.is_file()]
            examples = [e for f in present for e in read_arsc_file(f, f.name)]
            groups[stem] = ClassPool(group_by_label(deduplicate(examples)[0]))
            used += present
    notes = (
        f"source tasks use train+dev+test of their domain; missing files: {', '.join(missing)}",
    )
    splits: dict[str, EpisodeSource] = {
        "train": GroupedPool(groups),
        "test": FixedEpisodes(tuple(episodes)),
    }
    return Task(card, splits, "yu2018-targets", folder, hash_files(used), notes)


_card = partial(accuracy_card, "sentiment")


SST_SOURCE = "github.com/prrao87/fine-grained-sentiment data/sst @a440166 (sentence level)"
SST5_CARD = _card(
    "sst5",
    "SST-5 sentences, 5 classes: support from train, queries from dev (valid) or test",
    "no known license (Stanford); copy repo MIT",
    SST,
    SST_SOURCE,
    {"train": (5, 8534), "valid": (5, 9633), "test": (5, 10742)},
    class_splits="none (all 5 classes); support drawn from train, queries from test",
)
SST2_CARD = _card(
    "sst2",
    "SST-2 sentences (SST-5 without neutral), 2 classes: support from train, queries from test",
    "no known license (Stanford); copy repo MIT",
    SST,
    SST_SOURCE,
    {"train": (2, 6911), "valid": (2, 7783), "test": (2, 8730)},
    class_splits="none (both classes); support drawn from train, queries from test",
)
ARSC_CARD = _card(
    "arsc",
    "Amazon reviews, binary tasks (thresholds 2/4/5): 12 fixed 5-shot target tasks",
    "none stated (Blitzer et al. 2007 reviews)",
    ARSC,
    "github.com/Gorov/DiverseFewShot_Amazon Amazon_few_shot @7417f3d",
    {"train": (2, 75573), "test": (2, 9283)},
    class_splits="source: 19 domains x 3 tasks (train split); target: books, dvd, electronics, "
    "kitchen_housewares x 3 tasks (test split, fixed support)",
    source_domain="19 other Amazon product domains (57 binary tasks)",
    target_domain="books, dvd, electronics, kitchen_housewares (12 binary tasks)",
)

TASKS.add("sst5", TaskEntry(SST5_CARD, lambda d, s: load_sst(SST5_CARD, SST5_NAMES, d, s)))
TASKS.add("sst2", TaskEntry(SST2_CARD, lambda d, s: load_sst(SST2_CARD, SST2_NAMES, d, s)))
TASKS.add("arsc", TaskEntry(ARSC_CARD, lambda d, s: load_arsc(ARSC_CARD, d, s)))
