"""Intent classification: CLINC150, BANKING77, HWU64, Liu54, and DNNC's fixed 5/10-shot sets.

Each data set pools all its utterances; ProtAugment's class splits (`--split-id 1..5`) say which
intents train, valid and test episodes use. The DNNC tasks are one fixed episode each: the
published K-shot training subset as support, the data set's whole test part as queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from benchmark.core.datasource import hash_files, locate, read_maybe_gzipped, sha256_of
from benchmark.core.episodes import make_episode
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import FixedEpisodes
from benchmark.core.registry import TASKS
from benchmark.core.types import Example, Task, TaskCard, TaskEntry
from tasks.common import accuracy_card, class_split_task, label_split_files, parallel_files
from tasks.files import read_jsonl_examples, read_table_examples

VENDORED = Path(__file__).parent / "vendored"
PROTAUGMENT_SPLITS = (1, 2, 3, 4, 5)
PROTAUGMENT = "ProtAugment (Dopierre et al. 2021) random intent splits 1-5"


@dataclass(frozen=True)
class IntentData:
    """How to read one intent data set: its parts (name -> examples) and their hash."""

    folder: str
    marker: str
    read: Callable[[Path], tuple[dict[str, list[Example]], str]]
    test_part: str
    split_label: Callable[[str], str] = str
    vendored: bool = False


def _read_clinc(folder: Path) -> tuple[dict[str, list[Example]], str]:
    path = folder / "data_full.json"
    raw = read_maybe_gzipped(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    parts: dict[str, list[Example]] = {}
    for part in ("train", "val", "test"):
        if part not in data:
            raise DataFormatError(
                path, None, f"missing the key {part!r} (expected train, val, test)"
            )
        parts[part] = []
        for i, pair in enumerate(data[part]):
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
            ):
                raise DataFormatError(
                    path, None, f"entry {part}[{i}] should be [text, intent], got {pair!r}"
                )
            parts[part].append(Example(uid=f"{part}-{i:05d}", text=pair[0], label=pair[1]))
    return parts, sha256_of(raw)


def _read_banking(folder: Path) -> tuple[dict[str, list[Example]], str]:
    parts = {
        part: read_table_examples(folder / f"{part}.csv", ",", "text", "category", part)
        for part in ("train", "test")
    }
    return parts, hash_files(folder / f"{part}.csv" for part in ("train", "test"))


def _read_hwu(folder: Path) -> tuple[dict[str, list[Example]], str]:
    parts = {
        part: parallel_files(folder / part / "seq.in", folder / part / "label", part)
        for part in ("train", "valid", "test")
    }
    files = [folder / part / name for part in parts for name in ("seq.in", "label")]
    return parts, hash_files(files)


def _read_liu(folder: Path) -> tuple[dict[str, list[Example]], str]:
    path = folder / "full.jsonl"
    return {"full": read_jsonl_examples(path, "sentence", "label", "full")}, hash_files([path])


DATASETS = {
    "clinc150": IntentData("clinc150", "data_full.json", _read_clinc, "test", vendored=True),
    "banking77": IntentData("banking77", "train.csv", _read_banking, "test"),
    "hwu64": IntentData(
        "hwu64", "train/seq.in", _read_hwu, "test", split_label=lambda s: s.replace("/", "_", 1)
    ),
    "liu54": IntentData("liu54", "full.jsonl", _read_liu, ""),
}


def _folder(data: IntentData, data_dir: Path | None, allow_vendored: bool = True) -> Path:
    vendored = VENDORED / data.folder if data.vendored and allow_vendored else None
    return locate(data.folder, data.marker, data_dir, vendored)


def load_intent(card: TaskCard, data_dir: Path | None, split_id: int) -> Task:
    """An intent data set with ProtAugment class split `split_id`."""
    if split_id not in PROTAUGMENT_SPLITS:
        raise BenchmarkError(
            f"{card.name} has class splits {list(PROTAUGMENT_SPLITS)}, not {split_id}"
        )
    data = DATASETS[card.name]
    folder = _folder(data, data_dir)
    parts, digest = data.read(folder)
    examples = [e for part in parts.values() for e in part]
    split_dir = folder / "fewshot_splits_protaugment" / f"{split_id:02d}"
    splits = label_split_files(split_dir, {e.label for e in examples}, data.split_label)
    return class_split_task(
        card,
        examples,
        splits,
        split_name=f"protaugment-{split_id:02d}",
        where=split_dir,
        data_sha256=digest,
        data_path=folder,
    )


def load_dnnc(card: TaskCard, dataset: str, shots: int, data_dir: Path | None) -> Task:
    """One fixed episode: DNNC's `shots`-shot subset as support, the test part as queries."""
    data = DATASETS[dataset]
    folder = _folder(data, data_dir, allow_vendored=False)
    parts, digest = data.read(folder)
    subset = folder / "fewshot_subsets_dnnc" / f"train_{shots}"
    support = parallel_files(subset / "seq.in", subset / "label", f"dnnc{shots}")
    seen = {e.text for e in support}
    query = [e for e in parts[data.test_part] if e.text not in seen]
    unknown = {e.label for e in support} ^ {e.label for e in query}
    if unknown:
        raise DataFormatError(
            subset / "label", None, f"labels not shared with the test part: {sorted(unknown)[:5]}"
        )
    classes = sorted({e.label for e in support})
    episode = make_episode(classes, support, query, seed=0, index=0)
    overlap = len(parts[data.test_part]) - len(query)
    notes = (f"dropped {overlap} test utterance(s) also in the support set",) if overlap else ()
    digest = sha256_of((digest + hash_files([subset / "seq.in", subset / "label"])).encode())
    return Task(
        card, {"test": FixedEpisodes((episode,))}, f"dnnc-train_{shots}", folder, digest, notes
    )


_card = partial(accuracy_card, "intent", class_splits=PROTAUGMENT)


CLINC = (
    "Larson et al. 2019, An Evaluation Dataset for Intent Classification and Out-of-Scope "
    "Prediction, EMNLP-IJCNLP"
)
BANKING = (
    "Casanueva et al. 2020, Efficient Intent Detection with Dual Sentence Encoders, NLP4ConvAI"
)
HWU = (
    "Liu et al. 2019, Benchmarking Natural Language Understanding Services for building "
    "Conversational Agents, IWSDS"
)
DNNC = (
    "Zhang et al. 2020, Discriminative Nearest Neighbor Few-Shot Intent Detection by "
    "Transferring Natural Language Inference, EMNLP"
)

CARDS = {
    "clinc150": _card(
        "clinc150",
        "150 intents of 10 domains (in-scope only), 150 utterances each; 50/50/50 per split",
        "CC BY 3.0",
        CLINC,
        "github.com/clinc/oos-eval data_full.json @828f809; splits: tdopierre/ProtAugment",
        {"train": (50, 7498), "valid": (50, 7496), "test": (50, 7497)},
        vendored=True,
    ),
    "banking77": _card(
        "banking77",
        "77 fine-grained online-banking intents; 25/25/27 intents per split",
        "CC BY 4.0",
        BANKING,
        "github.com/PolyAI-LDN/task-specific-datasets banking_data @57ec275; splits: ProtAugment",
        {"train": (25, 4328), "valid": (25, 4083), "test": (27, 4661)},
    ),
    "hwu64": _card(
        "hwu64",
        "64 home-assistant intents of 18 scenarios; ProtAugment splits are by scenario",
        "CC BY 4.0",
        HWU,
        "github.com/jianguoz/Few-Shot-Intent-Detection HWU64 @fa95533; splits: ProtAugment",
        {"train": (16, 2771), "valid": (23, 4291), "test": (25, 3971)},
    ),
    "liu54": _card(
        "liu54",
        "54 home-assistant intents (the Liu et al. collection as used by ProtAugment), imbalanced",
        "CC BY 4.0 (data); Apache-2.0 (ProtAugment copy)",
        HWU + "; Dopierre et al. 2021, ProtAugment, ACL",
        "github.com/tdopierre/ProtAugment data/Liu @4233bba",
        {"train": (18, 5762), "valid": (18, 11417), "test": (18, 8253)},
    ),
}

DNNC_TASKS = {
    ("clinc150", 5): (150, 5249), ("clinc150", 10): (150, 5999),
    ("banking77", 5): (77, 3465), ("banking77", 10): (77, 3850),
    ("hwu64", 5): (64, 1396), ("hwu64", 10): (64, 1716),
}  # fmt: skip


def _register() -> None:
    for name, card in CARDS.items():
        TASKS.add(
            name,
            TaskEntry(card, lambda d, s, card=card: load_intent(card, d, s), PROTAUGMENT_SPLITS),
        )
    for (dataset, shots), counts in DNNC_TASKS.items():
        base = CARDS[dataset]
        card = _card(
            f"{dataset}-dnnc-{shots}shot",
            f"{base.name}: DNNC's fixed {shots}-shot training subset as support, all test "
            "utterances as queries (one all-way episode)",
            base.license,
            f"{base.citation}; {DNNC}",
            base.source + f"; support: jianguoz/Few-Shot-Intent-Detection train_{shots}",
            {"test": counts},
            class_splits=f"none: all intents; fixed {shots}-shot support (DNNC/CPFT)",
        )
        TASKS.add(
            card.name,
            TaskEntry(
                card, lambda d, _s, card=card, ds=dataset, k=shots: load_dnnc(card, ds, k, d)
            ),
        )


_register()
