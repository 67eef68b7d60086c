"""The classification tasks from the hub: intents (CLINC150, BANKING77, and CLINC150's
domain shift), SST, 20 Newsgroups and FewRel, each with its local loader's card and class split."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

from benchmark.core.datasource import deduplicate
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import ClassPool, group_by_label
from benchmark.core.registry import TASKS
from benchmark.core.types import EpisodeSource, Example, Task
from tasks.common import class_split_task, label_split_files
from tasks.domain_shift import (
    CLINC_DOMAINS,
    clinc_target_card,
    without_target_classes,
)
from tasks.hub.reading import (
    BANKING,
    CLINC,
    FEWREL,
    NEWSGROUPS,
    OUT_OF_SCOPE,
    SST2,
    SST5,
    HubSource,
    digest,
    load_splits,
    local_file,
    only_split_one,
    read_examples,
    require_columns,
)
from tasks.intent import DATASETS as INTENT_DATA
from tasks.intent import PROTAUGMENT_SPLITS
from tasks.relation import mark_entities
from tasks.sentiment import SST2_NAMES, SST5_NAMES, split_pool
from tasks.topic import NEWSGROUP_SPLITS

INTENT_SOURCES = {
    "clinc150": (CLINC, "intent", ("train", "validation", "test")),
    "banking77": (BANKING, "label", ("train", "test")),
}
SST_SOURCES = {"sst5": (SST5, SST5_NAMES), "sst2": (SST2, SST2_NAMES)}


def intent_examples(name: str) -> tuple[list[Example], HubSource, list[str]]:
    """All in-scope utterances of an intent data set, its source and notes."""
    source, label, splits = INTENT_SOURCES[name]
    parts = read_examples(source, load_splits(source, splits), "text", label)
    rows = [e for part in parts.values() for e in part]
    kept = [e for e in rows if e.label != OUT_OF_SCOPE]
    dropped = len(rows) - len(kept)
    notes = [f"dropped {dropped} out-of-scope ({OUT_OF_SCOPE}) utterance(s)"] if dropped else []
    return kept, source, notes


def load_intent(name: str, split_id: int, data_dir: Path | None) -> Task:
    """An intent data set from the hub with ProtAugment class split `split_id` (local files)."""
    if split_id not in PROTAUGMENT_SPLITS:
        raise BenchmarkError(f"{name} has class splits {list(PROTAUGMENT_SPLITS)}, not {split_id}")
    relative = f"fewshot_splits_protaugment/{split_id:02d}/labels.train.txt"
    split_dir = local_file(name, relative, data_dir).parent
    examples, source, notes = intent_examples(name)
    known = {e.label for e in examples}
    return class_split_task(
        TASKS.get(name).card,
        examples,
        label_split_files(split_dir, known, INTENT_DATA[name].split_label),
        split_name=f"hub:protaugment-{split_id:02d}",
        where=split_dir,
        data_sha256=digest(examples),
        data_path=source.path,
        notes=(source.note, *notes),
    )


def read_clinc_domains(path: Path) -> dict[str, list[str]]:
    """CLINC150's domain -> intents file, checked to hold the 10 domains."""
    try:
        domains = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    if sorted(domains) != list(CLINC_DOMAINS):
        raise DataFormatError(path, None, f"expected the domains {list(CLINC_DOMAINS)}")
    return domains


def load_clinc_domain_shift(split_id: int, data_dir: Path | None) -> Task:
    """CLINC150 from the hub, leave-one-domain-out: target the `split_id`-th domain."""
    name = "clinc150-domain-shift"
    if not 1 <= split_id <= len(CLINC_DOMAINS):
        raise BenchmarkError(f"{name} has splits 1-10 (one per target domain), not {split_id}")
    path = local_file("clinc150", "domains.json", data_dir)
    domains = read_clinc_domains(path)
    examples, source, notes = intent_examples("clinc150")
    target = CLINC_DOMAINS[split_id - 1]
    splits = {
        "train": [i for d in CLINC_DOMAINS if d != target for i in domains[d]],
        "test": list(domains[target]),
    }
    return class_split_task(
        clinc_target_card(TASKS.get(name).card, target),
        examples,
        splits,
        split_name=f"hub:target-{target}",
        where=path,
        data_sha256=digest(examples),
        data_path=source.path,
        notes=(source.note, *notes),
    )


def load_sst(name: str, split_id: int, data_dir: Path | None) -> Task:
    """SetFit's SST copy: support from train; queries from validation (valid) or test."""
    only_split_one(name, split_id)
    source, names = SST_SOURCES[name]
    read = read_examples(
        source, load_splits(source, ("train", "validation", "test")), "text", "label_text"
    )
    unknown = sorted({e.label for part in read.values() for e in part} - set(names.values()))
    if unknown:
        raise BenchmarkError(
            f"{source.describe()} has label_text values {unknown}; {name} expects "
            f"{sorted(set(names.values()))}"
        )
    parts = {}
    notes = [source.note]
    for part, examples in read.items():
        parts[part], dropped = deduplicate(examples)
        notes += [f"{part}: {note}" for note in dropped]
    valid, overlap_dev = split_pool(parts["train"], parts["validation"])
    test, overlap_test = split_pool(parts["train"], parts["test"])
    if overlap_dev or overlap_test:
        notes.append(
            f"dropped {overlap_dev} validation, {overlap_test} test sentence(s) also in train"
        )
    splits: dict[str, EpisodeSource] = {
        "train": ClassPool(group_by_label(parts["train"])),
        "valid": valid,
        "test": test,
    }
    all_examples = [e for part in read.values() for e in part]
    return Task(
        TASKS.get(name).card,
        splits,
        "hub:sst-train/validation/test",
        source.path,
        digest(all_examples),
        tuple(notes),
    )


def load_20newsgroups(split_id: int, data_dir: Path | None) -> Task:
    """SetFit's 20 Newsgroups (train + test pooled), split by hierarchy as Bao et al. did.

    SetFit removed headers, signatures and quotes, so unlike the local loader (Subject + body via
    `tasks.topic.strip_headers`) the text is the body alone; `strip_headers` would take its first
    paragraph for a header block, so the text is only whitespace-normalised.
    """
    name = "20newsgroups"
    only_split_one(name, split_id)
    read = read_examples(
        NEWSGROUPS, load_splits(NEWSGROUPS, ("train", "test")), "text", "label_text"
    )
    posts = [replace(e, text=" ".join(e.text.split())) for part in read.values() for e in part]
    examples = [e for e in posts if e.text]
    labels = sorted({e.label for e in examples})
    splits = {
        split: [label for label in labels if label.startswith(prefixes)]
        for split, prefixes in NEWSGROUP_SPLITS.items()
    }
    notes = [
        NEWSGROUPS.note,
        "SetFit removed headers, signatures and quotes: body text only, no Subject line",
    ]
    if len(examples) < len(posts):
        notes.append(f"dropped {len(posts) - len(examples)} post(s) left empty")
    return class_split_task(
        TASKS.get(name).card,
        examples,
        splits,
        split_name="hub:bao2020-hierarchy",
        where=NEWSGROUPS.path,
        data_sha256=digest(examples),
        data_path=NEWSGROUPS.path,
        notes=notes,
    )


def fewrel_examples(domain: str) -> list[Example]:
    """FewRel's `val_<domain>` rows as marked-text examples; uids `<relation>-<index>`."""
    split = f"val_{domain}"
    dataset = load_splits(FEWREL, (split,))[split]
    require_columns(dataset, ("relation", "tokens", "head", "tail"), FEWREL)
    seen: Counter[str] = Counter()
    examples = []
    for row, record in enumerate(dataset):
        relation = record["relation"]
        try:
            head, tail = record["head"]["indices"][0], record["tail"]["indices"][0]
            marked = mark_entities(record["tokens"], head, tail)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise BenchmarkError(
                f"{FEWREL.describe()} split {split} row {row} lacks tokens or head/tail "
                f"indices ({error!r})"
            ) from error
        examples.append(
            Example(f"{relation}-{seen[relation]:04d}", marked.text, relation, marked.spans)
        )
        seen[relation] += 1
    return examples


def fewrel_pool(domain: str) -> tuple[ClassPool, list[Example], list[str]]:
    """The deduplicated relation pool of `val_<domain>`, its raw examples and notes."""
    examples = fewrel_examples(domain)
    kept, notes = deduplicate(examples)
    return ClassPool.of(kept), examples, notes


def load_fewrel(domain: str, split_id: int, data_dir: Path | None) -> Task:
    """All relations of FewRel's `val_<domain>` split as the test split."""
    name = f"fewrel-{domain}"
    only_split_one(name, split_id)
    pool, examples, notes = fewrel_pool(domain)
    return Task(
        TASKS.get(name).card,
        {"test": pool},
        f"hub:val_{domain}-all",
        FEWREL.path,
        digest(examples),
        (FEWREL.note, f"split val_{domain}", *notes),
    )


def load_fewrel_shift(target: str, split_id: int, data_dir: Path | None) -> Task:
    """Source relations from `val_wiki` (train split), target relations (test split)."""
    name = f"fewrel-wiki-to-{target}"
    only_split_one(name, split_id)
    wiki, wiki_examples, notes = fewrel_pool("wiki")
    test, target_examples, target_notes = fewrel_pool(target)
    source, left_out = without_target_classes(wiki, test)
    splits: dict[str, EpisodeSource] = {"train": source, "test": test}
    return Task(
        TASKS.get(name).card,
        splits,
        f"hub:wiki-to-{target}",
        FEWREL.path,
        digest([*wiki_examples, *target_examples]),
        (FEWREL.note, f"splits val_wiki, val_{target}", *notes, *target_notes, *left_out),
    )
