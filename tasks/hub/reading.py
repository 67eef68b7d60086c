"""Reading a Hugging Face hub data set into examples: where each data set lives on the hub
(with its parquet export), which columns it needs, and a hash of what was read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.core.errors import BenchmarkError, DataNotFoundError
from benchmark.core.types import Example, Item, TaggedSentence, Task
from tasks.intent import VENDORED

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
