"""The built-in tasks, loaded from the Hugging Face hub (`--source hub`) instead of local files.

`HUB_LOADERS` maps task names to loaders of type `Callable[[int, Path | None], Task]`, called as
`loader(split_id, data_dir)`. Only clinc150, banking77 and clinc150-domain-shift use `data_dir`:
their class splits (ProtAugment's label files, CLINC150's `domains.json`) ship with the local data
and not with the hub data sets, so they are read from the vendored copy when present, else from
`data_dir/<data set>/`. The other loaders ignore `data_dir`.

Each loader keeps the card and the class split logic of the local loader. A task built here says
where its data came from: `split_name` starts with `hub:`, `data_sha256` hashes the converted
examples (so it never equals the hash of local files), `notes` name the hub data set, config and
revision, and `data_path` is the pseudo-path `huggingface.co/datasets/<id>`, not a local folder.

`datasets` >= 4 no longer runs loading scripts, so the script-based data sets (banking77, few_rel,
cross_ner) are read from the hub's parquet export (revision `refs/convert/parquet`, files
`<config>/<split>/*.parquet`). `datasets` is imported only when a loader runs.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from benchmark.datasource import deduplicate
from benchmark.errors import BenchmarkError, DataFormatError, DataNotFoundError
from benchmark.registry import HUB_TASKS, TASKS
from benchmark.sampling import ClassPool, group_by_label
from benchmark.tagging import TaggedPool, bio_problem, unique_sentences
from benchmark.types import EpisodeSource, Example, Item, TaggedSentence, Task
from tasks.common import class_split_task, label_split_files
from tasks.domain_shift import (
    CLINC_DOMAINS,
    FEWREL_COUNTS,
    clinc_target_card,
    without_target_classes,
)
from tasks.intent import DATASETS as INTENT_DATA
from tasks.intent import PROTAUGMENT_SPLITS, VENDORED
from tasks.ner import DOMAINS as CROSSNER_DOMAINS
from tasks.relation import DOMAINS as FEWREL_DOMAINS
from tasks.relation import mark_entities
from tasks.sentiment import SST2_NAMES, SST5_NAMES, split_pool
from tasks.topic import NEWSGROUP_SPLITS

HubLoader = Callable[[int, Path | None], Task]
PARQUET_EXPORT = "refs/convert/parquet"
OUT_OF_SCOPE = "oos"


@dataclass(frozen=True)
class HubSource:
    """A data set on the hub: its id, revision and config.

    With the revision `refs/convert/parquet` the config names a folder of the parquet export.
    """

    dataset_id: str
    revision: str
    config: str | None = None

    @property
    def exported(self) -> bool:
        """Whether the data is read from the hub's parquet export."""
        return self.revision == PARQUET_EXPORT

    def describe(self) -> str:
        """E.g. `clinc/clinc_oos (config plus, revision 155b9c7...)`."""
        what = "parquet export folder" if self.exported else "config"
        return f"{self.dataset_id} ({what} {self.config or 'default'}, revision {self.revision})"

    @property
    def path(self) -> Path:
        """A pseudo-path naming the hub data set (there is no local folder)."""
        return Path("huggingface.co/datasets") / self.dataset_id

    @property
    def note(self) -> str:
        """The task note naming the data's origin."""
        return f"hub: {self.describe()}"


# clinc_oos "plus" holds the full 150 x 150 in-scope utterances of data_full.json and 1,200 oos
# ones; "small" and "imbalanced" have fewer in-scope training utterances. Rows are in-scope first.
CLINC = HubSource("clinc/clinc_oos", "155b9c710419136e17307b80d0a13e68cd46b4ec", "plus")
BANKING = HubSource("PolyAI/banking77", PARQUET_EXPORT, "default")
SST5 = HubSource("SetFit/sst5", "e51bdcd8cd3a30da231967c1a249ba59361279a3")
SST2 = HubSource("SetFit/sst2", "main")
NEWSGROUPS = HubSource("SetFit/20_newsgroups", "main")
FEWREL = HubSource("thunlp/few_rel", PARQUET_EXPORT, "default")
CROSSNER_ID = "DFKI-SLT/cross_ner"

INTENT_SOURCES = {
    "clinc150": (CLINC, "intent", ("train", "validation", "test")),
    "banking77": (BANKING, "label", ("train", "test")),
}
SST_SOURCES = {"sst5": (SST5, SST5_NAMES), "sst2": (SST2, SST2_NAMES)}
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


def load_splits(source: HubSource, splits: Sequence[str]) -> dict[str, Any]:
    """The named splits of `source` via `datasets.load_dataset`; any failure is a BenchmarkError."""
    import datasets

    options: dict[str, Any] = {"revision": source.revision}
    if source.exported:
        options["data_files"] = {split: f"{source.config}/{split}/*.parquet" for split in splits}
    else:
        options["name"] = source.config
    try:
        loaded = datasets.load_dataset(source.dataset_id, **options)
    except Exception as error:
        raise BenchmarkError(
            f"could not load {source.describe()} with datasets.load_dataset: the Hugging Face hub "
            f"could not be reached or does not serve this data ({type(error).__name__}: {error}). "
            "The local data (--data-dir, or the vendored copies) works offline"
        ) from error
    missing = [split for split in splits if split not in loaded]
    if missing:
        raise BenchmarkError(f"{source.describe()} has no split {missing}; it has {list(loaded)}")
    return {split: loaded[split] for split in splits}


def require_columns(dataset: Any, columns: Sequence[str], source: HubSource) -> None:
    """Fail, naming the data set and the columns it has, when one of `columns` is missing."""
    missing = [column for column in columns if column not in dataset.column_names]
    if missing:
        raise BenchmarkError(
            f"{source.describe()} lacks the column(s) {missing} this loader reads; "
            f"it has {dataset.column_names}"
        )


def label_reader(dataset: Any, column: str, source: HubSource) -> Callable[[Any], str]:
    """Value -> label name: a ClassLabel's names, or the value itself when it is a string."""
    feature = dataset.features[column]
    names = getattr(feature, "names", None)
    if names:
        return lambda value: names[value]
    if getattr(feature, "dtype", None) not in ("string", "large_string"):
        raise BenchmarkError(
            f"{source.describe()}: column {column!r} is {feature}, neither a ClassLabel nor "
            "strings, so its values cannot be named"
        )
    return str


def read_examples(
    source: HubSource, data: Mapping[str, Any], text: str, label: str
) -> dict[str, list[Example]]:
    """The examples of each split; uids are `<split>-<row>`."""
    parts = {}
    for split, dataset in data.items():
        require_columns(dataset, (text, label), source)
        name_of = label_reader(dataset, label, source)
        parts[split] = [
            Example(f"{split}-{row:05d}", record[text].strip(), name_of(record[label]))
            for row, record in enumerate(dataset)
        ]
    return parts


def digest(items: Iterable[Item]) -> str:
    """sha256 over every item's uid, label(s) and text (or tokens), in order."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, TaggedSentence):
            fields: list[Any] = [item.uid, item.tags, item.tokens]
        else:
            fields = [item.uid, item.label, item.text]
        h.update((json.dumps(fields) + "\n").encode())
    return h.hexdigest()


def only_split_one(name: str, split_id: int) -> None:
    """Tasks with a single split accept only `--split-id 1`."""
    if split_id != 1:
        raise BenchmarkError(f"{name} has one split (1), not {split_id}")


def local_file(folder: str, relative: str, data_dir: Path | None) -> Path:
    """A file that ships with the local data only: the vendored copy if present, else data_dir's."""
    candidates = [VENDORED / folder / relative]
    if data_dir is not None:
        candidates.append(data_dir / folder / relative)
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(path) for path in candidates)
    raise DataNotFoundError(
        f"{folder}/{relative} is not on the hub; it ships with the local data (looked for "
        f"{looked}). Pass --data-dir DIR with DIR/{folder}/{relative} to load {folder} from the hub"
    )


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


def _loaders() -> dict[str, HubLoader]:
    """Task name -> hub loader, for every task the hub can serve."""
    loaders: dict[str, HubLoader] = {
        "clinc150": partial(load_intent, "clinc150"),
        "banking77": partial(load_intent, "banking77"),
        "clinc150-domain-shift": load_clinc_domain_shift,
        "sst5": partial(load_sst, "sst5"),
        "sst2": partial(load_sst, "sst2"),
        "20newsgroups": load_20newsgroups,
    }
    for domain in FEWREL_DOMAINS:
        loaders[f"fewrel-{domain}"] = partial(load_fewrel, domain)
    for target in FEWREL_COUNTS:
        loaders[f"fewrel-wiki-to-{target}"] = partial(load_fewrel_shift, target)
    for domain in CROSSNER_DOMAINS:
        loaders[f"crossner-{domain}"] = partial(load_crossner, domain)
        if domain != "conll2003":
            loaders[f"crossner-conll-to-{domain}"] = partial(load_crossner_shift, domain)
    return loaders


HUB_LOADERS: dict[str, HubLoader] = _loaders()

for _name, _loader in HUB_LOADERS.items():
    HUB_TASKS.add(_name, _loader)
