"""Named entity recognition: CrossNER's CoNLL-2003 source and its five target domains.

Episodes are N-way K-shot over entity types, sampled greedily as in Few-NERD from one file of
the domain (train, dev = valid, test); the metric is entity-level micro F1 (conlleval rules, the
same float as seqeval's).
"""

from __future__ import annotations

from pathlib import Path

from benchmark.core.datasource import hash_files, locate
from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import TASKS
from benchmark.core.tagging import TaggedPool, unique_sentences
from benchmark.core.types import EpisodeSource, TaggedSentence, Task, TaskCard, TaskEntry
from tasks.files import read_conll

VENDORED = Path(__file__).parent / "vendored"
CROSSNER = "Liu et al. 2021, CrossNER: Evaluating Cross-Domain Named Entity Recognition, AAAI"
CONLL = "Tjong Kim Sang and De Meulder 2003, Introduction to the CoNLL-2003 Shared Task, CoNLL"
FEW_NERD = "greedy N-way K-shot sampling of Ding et al. 2021 (Few-NERD)"
PARTS = {"train": "train", "valid": "dev", "test": "test"}
DOMAINS = ("conll2003", "politics", "science", "music", "literature", "ai")
VENDORED_DOMAINS = {"music": VENDORED / "crossner_music"}


def crossner_domain(
    domain: str, data_dir: Path | None
) -> tuple[dict[str, list[TaggedSentence]], Path, str]:
    """Sentences of each file of one CrossNER domain, the folder and a hash of the files."""
    folder = locate(f"crossner/{domain}", "train.txt", data_dir, VENDORED_DOMAINS.get(domain))
    parts = {
        split: read_conll(folder / f"{stem}.txt", f"{domain}-{stem}")
        for split, stem in PARTS.items()
    }
    return parts, folder, hash_files(folder / f"{stem}.txt" for stem in PARTS.values())


def load_crossner(card: TaskCard, domain: str, data_dir: Path | None, split_id: int) -> Task:
    """One domain; each file is a split."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    parts, folder, digest = crossner_domain(domain, data_dir)
    splits: dict[str, EpisodeSource] = {
        split: TaggedPool(unique_sentences(sentences)) for split, sentences in parts.items()
    }
    return Task(card, splits, "crossner-files", folder, digest)


COUNTS = {
    "conll2003": {"train": (4, 12691), "valid": (4, 3070), "test": (4, 3184)},
    "politics": {"train": (9, 200), "valid": (9, 540), "test": (9, 651)},
    "science": {"train": (17, 199), "valid": (17, 446), "test": (17, 532)},
    "music": {"train": (13, 99), "valid": (13, 375), "test": (13, 457)},
    "literature": {"train": (12, 100), "valid": (12, 400), "test": (12, 416)},
    "ai": {"train": (14, 100), "valid": (14, 350), "test": (14, 430)},
}


def _card(domain: str) -> TaskCard:
    conll = domain == "conll2003"
    return TaskCard(
        name=f"crossner-{domain}",
        family="ner",
        version="1.0",
        description=f"CrossNER {domain}: N-way K-shot over entity types, BIO tags",
        license="MIT (annotations); CoNLL-2003 text under Reuters terms"
        if conll
        else "MIT (CrossNER); Wikipedia text CC BY-SA",
        citation=f"{CROSSNER}; {CONLL}" if conll else CROSSNER,
        source=f"github.com/zliucr/CrossNER ner_data/{domain} @2e7ba2a",
        metric="entity-f1",
        class_splits=f"none: all entity types; files train/dev/test are the splits; {FEW_NERD}",
        counts=COUNTS[domain],
        vendored=domain in VENDORED_DOMAINS,
    )


for _domain in DOMAINS:
    _ner_card = _card(_domain)
    TASKS.add(
        _ner_card.name,
        TaskEntry(_ner_card, lambda d, s, c=_ner_card, x=_domain: load_crossner(c, x, d, s)),
    )
