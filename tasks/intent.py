"""Intent classification tasks."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.datasource import (
    check_disjoint_splits,
    deduplicate,
    locate,
    read_label_list,
    read_maybe_gzipped,
    sha256_of,
)
from benchmark.errors import BenchmarkError, DataFormatError
from benchmark.registry import TASKS
from benchmark.types import Example, Task, TaskCard, TaskEntry

VENDORED = Path(__file__).parent / "vendored"
PROTAUGMENT_SPLITS = (1, 2, 3, 4, 5)
SPLIT_FILES = {"train": "train", "valid": "valid", "test": "test"}

CLINC150 = TaskCard(
    name="clinc150",
    family="intent",
    version="1.0",
    description="150 intents of 10 domains (in-scope only); 150 utterances per intent",
    license="CC BY 3.0",
    citation=(
        "Larson et al. 2019, An Evaluation Dataset for Intent Classification and Out-of-Scope "
        "Prediction, EMNLP-IJCNLP"
    ),
    source="github.com/clinc/oos-eval data/data_full.json @828f809; splits: tdopierre/ProtAugment",
    metric="accuracy",
    class_splits="ProtAugment random intent splits 1-5: 50 train / 50 valid / 50 test intents",
    vendored=True,
)


def _clinc_examples(path: Path, raw: bytes) -> list[Example]:
    """In-scope (text, intent) pairs of the train, val and test parts, as one pool."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    examples: list[Example] = []
    for part in ("train", "val", "test"):
        if part not in data:
            raise DataFormatError(
                path, None, f"missing the key {part!r} (expected train, val, test)"
            )
        for i, pair in enumerate(data[part]):
            if not (
                isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair)
            ):
                raise DataFormatError(
                    path, None, f"entry {part}[{i}] should be [text, intent], got {pair!r}"
                )
            examples.append(Example(uid=f"{part}-{i:05d}", text=pair[0], label=pair[1]))
    return examples


def load_clinc150(data_dir: Path | None, split_id: int) -> Task:
    """CLINC150 with ProtAugment class split `split_id`; `data_dir=None` reads the vendored copy."""
    if split_id not in PROTAUGMENT_SPLITS:
        raise BenchmarkError(
            f"clinc150 has class splits {list(PROTAUGMENT_SPLITS)}, not {split_id}"
        )
    folder = locate("clinc150", "data_full.json", data_dir, VENDORED / "clinc150")
    path = folder / "data_full.json"
    raw = read_maybe_gzipped(path)
    examples, notes = deduplicate(_clinc_examples(path, raw))
    known = {e.label for e in examples}
    split_dir = folder / "fewshot_splits_protaugment" / f"{split_id:02d}"
    splits = {
        name: read_label_list(split_dir / f"labels.{stem}.txt", known)
        for name, stem in SPLIT_FILES.items()
    }
    check_disjoint_splits(split_dir, splits)
    return Task(
        card=CLINC150,
        examples=tuple(examples),
        splits=splits,
        split_name=f"protaugment-{split_id:02d}",
        data_path=folder,
        data_sha256=sha256_of(raw),
        notes=tuple(notes),
    )


TASKS.add("clinc150", TaskEntry(CLINC150, load_clinc150, PROTAUGMENT_SPLITS))
