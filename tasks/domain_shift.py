"""Domain shift: choose or meta-train on a source domain (train split), test on a target domain.

- CLINC150 leave-one-domain-out: `--split-id 1..10` picks the target domain; the other 9 are
  the source.
- FewRel: val_wiki's relations are the source; PubMed, NYT or SemEval relations the target.
- CrossNER: CoNLL-2003 (news) is the source; each of the five Wikipedia domains a target.
ARSC (source: 19 Amazon domains, target: 4) is registered with the sentiment tasks.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from benchmark.core.datasource import locate, read_maybe_gzipped, sha256_of
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import ClassPool
from benchmark.core.registry import TASKS
from benchmark.core.tagging import TaggedPool, unique_sentences
from benchmark.core.types import EpisodeSource, Task, TaskCard, TaskEntry
from tasks.common import class_split_task
from tasks.intent import CARDS as INTENT_CARDS
from tasks.intent import DATASETS as INTENT_DATA
from tasks.intent import VENDORED
from tasks.ner import CROSSNER, FEW_NERD, crossner_domain
from tasks.relation import FEWREL, fewrel_pool

CLINC_DOMAINS = (
    "auto_and_commute", "banking", "credit_cards", "home", "kitchen_and_dining",
    "meta", "small_talk", "travel", "utility", "work",
)  # fmt: skip


def clinc_target_card(card: TaskCard, target: str) -> TaskCard:
    """The card with the source and target domains of one leave-one-domain-out split."""
    return replace(
        card,
        source_domain=f"the 9 CLINC150 domains other than {target}",
        target_domain=f"CLINC150 domain {target}",
    )


def load_clinc_domain_shift(card: TaskCard, data_dir: Path | None, split_id: int) -> Task:
    """Target: the `split_id`-th domain (alphabetical); source: the other nine."""
    if not 1 <= split_id <= len(CLINC_DOMAINS):
        raise BenchmarkError(f"{card.name} has splits 1-10 (one per target domain), not {split_id}")
    data = INTENT_DATA["clinc150"]
    folder = locate("clinc150", "domains.json", data_dir, VENDORED / "clinc150")
    path = folder / "domains.json"
    try:
        domains = json.loads(read_maybe_gzipped(path))
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    if sorted(domains) != list(CLINC_DOMAINS):
        raise DataFormatError(path, None, f"expected the domains {list(CLINC_DOMAINS)}")
    parts, digest = data.read(folder)
    target = CLINC_DOMAINS[split_id - 1]
    splits = {
        "train": [i for d in CLINC_DOMAINS if d != target for i in domains[d]],
        "test": list(domains[target]),
    }
    return class_split_task(
        clinc_target_card(card, target),
        [e for part in parts.values() for e in part],
        splits,
        split_name=f"target-{target}",
        where=path,
        data_sha256=digest,
        data_path=folder,
    )


def without_target_classes(source: ClassPool, target: ClassPool) -> tuple[ClassPool, list[str]]:
    """The source pool minus the classes the target also has (nothing trains on a test class),
    and a note naming them when there are any."""
    shared = sorted(set(source.by_label) & set(target.by_label))
    if not shared:
        return source, []
    kept = {label: items for label, items in source.by_label.items() if label not in shared}
    note = f"left the {len(shared)} source classes that are also target classes out: {shared}"
    return replace(source, by_label=kept), [note]


def load_fewrel_shift(card: TaskCard, target: str, data_dir: Path | None, split_id: int) -> Task:
    """Source relations from val_wiki (train split) that the target lacks, target relations
    (test split)."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    wiki, _, source_digest, notes = fewrel_pool("wiki", data_dir)
    test, folder, target_digest, target_notes = fewrel_pool(target, data_dir)
    source, left_out = without_target_classes(wiki, test)
    splits: dict[str, EpisodeSource] = {"train": source, "test": test}
    digest = sha256_of((source_digest + target_digest).encode())
    notes = (*notes, *target_notes, *left_out)
    return Task(card, splits, f"wiki-to-{target}", folder, digest, notes)


def load_crossner_shift(card: TaskCard, target: str, data_dir: Path | None, split_id: int) -> Task:
    """Source: CoNLL-2003 train sentences; target: the domain's dev (valid) and test sentences."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    source, _, source_digest = crossner_domain("conll2003", data_dir)
    parts, folder, target_digest = crossner_domain(target, data_dir)
    splits: dict[str, EpisodeSource] = {
        "train": TaggedPool(unique_sentences(source["train"])),
        "valid": TaggedPool(unique_sentences(parts["valid"])),
        "test": TaggedPool(unique_sentences(parts["test"])),
    }
    digest = sha256_of((source_digest + target_digest).encode())
    return Task(card, splits, f"conll2003-to-{target}", folder, digest)


def _card(
    name: str, description: str, base: TaskCard, source: str, target: str, **extra
) -> TaskCard:
    return TaskCard(
        name=name,
        family="domain shift",
        version=extra.pop("version", "1.0"),
        description=description,
        license=base.license,
        citation=extra.pop("citation", base.citation),
        source=base.source,
        metric=base.metric,
        class_splits=extra.pop("class_splits"),
        source_domain=source,
        target_domain=target,
        **extra,
    )


CLINC_SHIFT = _card(
    "clinc150-domain-shift",
    "CLINC150 leave one domain out: source 9 domains (135 intents), target 1 domain (15)",
    INTENT_CARDS["clinc150"],
    "the 9 other CLINC150 domains",
    "the CLINC150 domain chosen by --split-id (1=auto_and_commute ... 10=work)",
    class_splits="--split-id 1..10 = target domain in alphabetical order",
    counts={"train": (135, 20241), "test": (15, 2250)},
    vendored=True,
)
TASKS.add(
    CLINC_SHIFT.name,
    TaskEntry(
        CLINC_SHIFT,
        lambda d, s: load_clinc_domain_shift(CLINC_SHIFT, d, s),
        tuple(range(1, len(CLINC_DOMAINS) + 1)),
    ),
)

FEWREL_COUNTS = {"pubmed": (10, 1000), "nyt": (25, 2500), "semeval": (17, 8851)}
# val_nyt shares 8 relations (Wikidata ids) with val_wiki; they are left out of its source.
FEWREL_SOURCE_COUNTS = {"pubmed": (16, 11199), "nyt": (8, 5600), "semeval": (16, 11199)}
FEWREL_SHIFT_VERSIONS = {"pubmed": "1.0", "nyt": "1.1", "semeval": "1.0"}
for _target, _counts in FEWREL_COUNTS.items():
    _base = TASKS.get(f"fewrel-{_target}").card
    _relations = FEWREL_SOURCE_COUNTS[_target][0]
    _fewrel_card = _card(
        f"fewrel-wiki-to-{_target}",
        f"FewRel: source val_wiki ({_relations} relations), target val_{_target}",
        _base,
        f"FewRel val_wiki (Wikipedia, {_relations} relations)",
        f"FewRel val_{_target}",
        citation=FEWREL,
        class_splits="train = val_wiki relations the target lacks, test = target relations",
        counts={"train": FEWREL_SOURCE_COUNTS[_target], "test": _counts},
        version=FEWREL_SHIFT_VERSIONS[_target],
    )
    TASKS.add(
        _fewrel_card.name,
        TaskEntry(
            _fewrel_card, lambda d, s, c=_fewrel_card, t=_target: load_fewrel_shift(c, t, d, s)
        ),
    )

for _target in ("politics", "science", "music", "literature", "ai"):
    _base = TASKS.get(f"crossner-{_target}").card
    _ner_card = _card(
        f"crossner-conll-to-{_target}",
        f"CrossNER: source CoNLL-2003 news (4 types), target {_target} (Wikipedia)",
        _base,
        "CoNLL-2003 train (news; person, location, organisation, misc)",
        f"CrossNER {_target}",
        citation=CROSSNER,
        class_splits=f"train = CoNLL-2003 train, valid/test = {_target} dev/test; {FEW_NERD}",
        counts={"train": (4, 12691), **{k: v for k, v in _base.counts.items() if k != "train"}},
    )
    TASKS.add(
        _ner_card.name,
        TaskEntry(_ner_card, lambda d, s, c=_ner_card, t=_target: load_crossner_shift(c, t, d, s)),
    )
