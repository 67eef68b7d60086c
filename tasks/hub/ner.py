"""The CrossNER tasks from the hub: BIO tags from the data set's integer tags, checked,
with the local loader's card and entity types."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import TASKS
from benchmark.core.tagging import TaggedPool, bio_problem, unique_sentences
from benchmark.core.types import EpisodeSource, TaggedSentence, Task
from tasks.hub.reading import (
    CROSSNER_ID,
    PARQUET_EXPORT,
    HubSource,
    digest,
    load_splits,
    only_split_one,
    require_columns,
)

CROSSNER_PARTS = {"train": "train", "valid": "validation", "test": "test"}


# DFKI-SLT/cross_ner's ner_tags ClassLabel (one list for all configs) names the types as our local
# CrossNER files do: lower-case full names such as `B-person`, `B-organisation`, `I-musicgenre`;
# CoNLL-2003 is `person/location/organisation/misc` there too, not PER/LOC/ORG/MISC. Should a
# revision use other case, CoNLL short forms or the US spelling, those are mapped below; any other
# name is an error, since entity types are the classes of NER episodes.
TYPE_ALIASES = {
    "per": "person", "loc": "location", "org": "organisation", "organization": "organisation",
}  # fmt: skip
CROSSNER_TYPES = {
    "conll2003": ("location", "misc", "organisation", "person"),
    "politics": (
        "country", "election", "event", "location", "misc", "organisation", "person",
        "politicalparty", "politician",
    ),
    "science": (
        "academicjournal", "astronomicalobject", "award", "chemicalcompound", "chemicalelement",
        "country", "discipline", "enzyme", "event", "location", "misc", "organisation", "person",
        "protein", "scientist", "theory", "university",
    ),
    "music": (
        "album", "award", "band", "country", "event", "location", "misc", "musicalartist",
        "musicalinstrument", "musicgenre", "organisation", "person", "song",
    ),
    "literature": (
        "award", "book", "country", "event", "literarygenre", "location", "magazine", "misc",
        "organisation", "person", "poem", "writer",
    ),
    "ai": (
        "algorithm", "conference", "country", "field", "location", "metrics", "misc",
        "organisation", "person", "product", "programlang", "researcher", "task", "university",
    ),
}  # fmt: skip


def crossner_tag(name: str) -> str:
    """A ClassLabel tag name in our BIO form: `B-`/`I-` and the lower-case CrossNER type."""
    if name.upper() == "O":
        return "O"
    prefix, _, kind = name.partition("-")
    kind = kind.lower()
    return f"{prefix.upper()}-{TYPE_ALIASES.get(kind, kind)}"


def tag_names(dataset: Any, source: HubSource) -> list[str]:
    """Our tag for each integer of `ner_tags`, from its ClassLabel names."""
    names = getattr(getattr(dataset.features["ner_tags"], "feature", None), "names", None)
    if not names:
        raise BenchmarkError(
            f"{source.describe()}: ner_tags is {dataset.features['ner_tags']}, not a sequence of "
            "ClassLabel, so its integer tags cannot be named"
        )
    return [crossner_tag(name) for name in names]


def check_tags(tokens: tuple[str, ...], tags: tuple[str, ...], where: str) -> None:
    """One tag per token, in a valid BIO sequence."""
    if len(tags) != len(tokens):
        raise BenchmarkError(f"{where}: {len(tags)} tags for {len(tokens)} tokens")
    for previous, tag in zip(("O", *tags), tags, strict=False):
        problem = bio_problem(previous, tag)
        if problem:
            raise BenchmarkError(f"{where}: invalid BIO sequence: {problem}")


def read_sentences(source: HubSource, split: str, dataset: Any) -> list[TaggedSentence]:
    """One split's sentences with BIO tags; uids are `<domain>-<split>-<row>`."""
    require_columns(dataset, ("tokens", "ner_tags"), source)
    names = tag_names(dataset, source)
    sentences = []
    for row, record in enumerate(dataset):
        tokens = tuple(record["tokens"])
        if tokens in ((), ("-DOCSTART-",)):
            continue
        tags = tuple(names[i] for i in record["ner_tags"])
        check_tags(tokens, tags, f"{source.describe()} split {split} row {row}")
        sentences.append(TaggedSentence(f"{source.config}-{split}-{row:06d}", tokens, tags))
    return sentences


def crossner_parts(domain: str) -> tuple[dict[str, list[TaggedSentence]], HubSource]:
    """Sentences of each split (train, valid, test) of one CrossNER domain, and the source."""
    source = HubSource(CROSSNER_ID, PARQUET_EXPORT, domain)
    data = load_splits(source, tuple(CROSSNER_PARTS.values()))
    parts = {
        split: read_sentences(source, hub_split, data[hub_split])
        for split, hub_split in CROSSNER_PARTS.items()
    }
    found = {kind for sentences in parts.values() for s in sentences for kind in s.types}
    unknown = sorted(found - set(CROSSNER_TYPES[domain]))
    if unknown:
        raise BenchmarkError(
            f"{source.describe()} has entity types {unknown} that the local CrossNER {domain} "
            f"data does not use ({', '.join(CROSSNER_TYPES[domain])}); their names could not be "
            "mapped"
        )
    return parts, source


def load_crossner(domain: str, split_id: int, data_dir: Path | None) -> Task:
    """One CrossNER domain; each hub split is a split."""
    name = f"crossner-{domain}"
    only_split_one(name, split_id)
    parts, source = crossner_parts(domain)
    splits: dict[str, EpisodeSource] = {
        split: TaggedPool(unique_sentences(sentences)) for split, sentences in parts.items()
    }
    sentences = [s for part in parts.values() for s in part]
    return Task(
        TASKS.get(name).card,
        splits,
        "hub:crossner-files",
        source.path,
        digest(sentences),
        (source.note,),
    )


def load_crossner_shift(target: str, split_id: int, data_dir: Path | None) -> Task:
    """Source: CoNLL-2003 train sentences; target: the domain's validation and test sentences."""
    name = f"crossner-conll-to-{target}"
    only_split_one(name, split_id)
    source_parts, source = crossner_parts("conll2003")
    parts, target_source = crossner_parts(target)
    used = {"train": source_parts["train"], "valid": parts["valid"], "test": parts["test"]}
    splits: dict[str, EpisodeSource] = {
        split: TaggedPool(unique_sentences(sentences)) for split, sentences in used.items()
    }
    sentences = [s for part in used.values() for s in part]
    return Task(
        TASKS.get(name).card,
        splits,
        f"hub:conll2003-to-{target}",
        target_source.path,
        digest(sentences),
        (source.note, target_source.note),
    )
