"""Relation classification: FewRel 1.0 validation (Wikipedia) and FewRel 2.0 / extra domains.

Each instance's text is its tokens with the entities marked, `<e1> head </e1>` and
`<e2> tail </e2>`; the entity positions are also kept as character spans (`head`, `tail`).
FewRel's training relations (train_wiki) are not published in our data, so these tasks have a
test split only; the domain-shift tasks use val_wiki's relations as the source.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.core.datasource import deduplicate, locate, read_maybe_gzipped, sha256_of
from benchmark.core.errors import BenchmarkError, DataFormatError
from benchmark.core.pools import ClassPool
from benchmark.core.registry import TASKS
from benchmark.core.types import Example, Task, TaskCard, TaskEntry

VENDORED = Path(__file__).parent / "vendored" / "fewrel"
FEWREL = (
    "Han et al. 2018, FewRel: A Large-Scale Supervised Few-Shot Relation Classification Dataset, "
    "EMNLP; Gao et al. 2019, FewRel 2.0, EMNLP-IJCNLP"
)
DOMAINS = {
    "wiki": "Wikipedia",
    "pubmed": "PubMed",
    "nyt": "New York Times",
    "semeval": "SemEval-2010 T8",
}


def mark_entities(tokens: list[str], head: list[int], tail: list[int]) -> Example:
    """Text with `<e1>`/`<e2>` markers around the entities, and their character spans."""
    entities = (("head", "e1", min(head), max(head)), ("tail", "e2", min(tail), max(tail)))
    pieces: list[str] = []
    starts: dict[str, int] = {}
    spans: list[tuple[str, int, int]] = []
    length = -1
    for i, token in enumerate([*tokens, ""]):
        for name, marker, _, last in reversed(entities):
            if last == i - 1:
                spans.append((name, starts[name], length))
                pieces.append(f"</{marker}>")
                length += len(pieces[-1]) + 1
        if i == len(tokens):
            break
        for name, marker, first, _ in entities:
            if first == i:
                pieces.append(f"<{marker}>")
                length += len(pieces[-1]) + 1
                starts[name] = length + 1
        pieces.append(token)
        length += len(token) + 1
    return Example("", " ".join(pieces), "", tuple(sorted(spans)))


def read_fewrel(path: Path) -> tuple[list[Example], str]:
    """Instances of one FewRel file as marked-text examples labelled by relation id."""
    raw = read_maybe_gzipped(path)
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise DataFormatError(path, error.lineno, f"invalid JSON: {error.msg}") from error
    examples = []
    for relation, instances in data.items():
        for i, instance in enumerate(instances):
            try:
                head = instance["h"][2][0]
                tail = instance["t"][2][0]
                marked = mark_entities(instance["tokens"], head, tail)
            except (KeyError, IndexError, TypeError, ValueError) as error:
                raise DataFormatError(
                    path,
                    None,
                    f"instance {relation}[{i}] lacks tokens or h/t positions ({error!r})",
                ) from error
            examples.append(Example(f"{relation}-{i:04d}", marked.text, relation, marked.spans))
    return examples, sha256_of(raw)


def fewrel_pool(domain: str, data_dir: Path | None) -> tuple[ClassPool, Path, str, list[str]]:
    """The deduplicated relation pool of `val_<domain>.json`."""
    vendored = VENDORED if domain == "wiki" else None
    folder = locate("fewrel", f"val_{domain}.json", data_dir, vendored)
    examples, digest = read_fewrel(folder / f"val_{domain}.json")
    kept, notes = deduplicate(examples)
    return ClassPool.of(kept), folder, digest, notes


def load_fewrel(card: TaskCard, domain: str, data_dir: Path | None, split_id: int) -> Task:
    """All relations of one FewRel file as the test split."""
    if split_id != 1:
        raise BenchmarkError(f"{card.name} has one split (1), not {split_id}")
    pool, folder, digest, notes = fewrel_pool(domain, data_dir)
    return Task(card, {"test": pool}, f"val_{domain}-all", folder, digest, tuple(notes))


COUNTS = {"wiki": (16, 11199), "pubmed": (10, 1000), "nyt": (25, 2500), "semeval": (17, 8851)}


def _card(domain: str) -> TaskCard:
    return TaskCard(
        name=f"fewrel-{domain}",
        family="relation",
        version="1.0",
        description=f"FewRel val_{domain}: {DOMAINS[domain]} sentences, two marked entities",
        license="MIT (thunlp/FewRel)",
        citation=FEWREL,
        source=f"github.com/thunlp/FewRel data/val_{domain}.json @278a231",
        metric="accuracy",
        class_splits="none: every relation of the file is a test class (train_wiki not available)",
        counts={"test": COUNTS[domain]},
        vendored=domain == "wiki",
    )


for _domain in DOMAINS:
    _fewrel_card = _card(_domain)
    TASKS.add(
        _fewrel_card.name,
        TaskEntry(_fewrel_card, lambda d, s, c=_fewrel_card, x=_domain: load_fewrel(c, x, d, s)),
    )
