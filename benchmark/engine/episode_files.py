"""Episodes as files: export sampled episodes with their fingerprints as JSON lines, and read
them back (or a Few-NERD episode file) as a fixed episode source whose identity is the file's
sha256, every fingerprint verified.

Our format: a header line `{"format": "fewshot-bench-episodes", "version": 1, "task": ...,
"kind": ..., "spec": ...}`, then one episode per line: `seed`, `index`, `classes`, `support` and
`query` items (`uid`, `label`, `text`[, `spans`] or `uid`, `tokens`, `tags`) and `fingerprint`.
Few-NERD's format: one episode per line with `support` and `query` as `{"word": [[...]],
"label": [[...]]}` (IO tags: a type name or `O`, turned into BIO) and `types`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmark.core.datasource import sha256_of
from benchmark.core.episodes import make_episode
from benchmark.core.errors import DataFormatError, SpecError
from benchmark.core.tagging import mentions
from benchmark.core.types import Episode, EpisodeSpec, Example, Item, Kind, TaggedSentence

FORMAT = "fewshot-bench-episodes"
VERSION = 1


def item_document(item: Item) -> dict:
    """An item as its JSON object."""
    if isinstance(item, TaggedSentence):
        return {"uid": item.uid, "tokens": list(item.tokens), "tags": list(item.tags)}
    document = {"uid": item.uid, "label": item.label, "text": item.text}
    if item.spans:
        document["spans"] = [list(span) for span in item.spans]
    return document


def write_episodes(path: Path, header: dict, episodes: Sequence[Episode]) -> None:
    """`path` as our JSON-lines format: `header` (task, spec, ...), then every episode."""
    lines = [json.dumps({"format": FORMAT, "version": VERSION, **header})]
    for e in episodes:
        lines.append(
            json.dumps(
                {
                    "seed": e.seed,
                    "index": e.index,
                    "classes": list(e.classes),
                    "support": [item_document(x) for x in e.support],
                    "query": [item_document(x) for x in e.query],
                    "fingerprint": e.fingerprint,
                }
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class EpisodeFile:
    """The episodes of a file, its header (None for Few-NERD files) and the file's sha256."""

    path: Path
    header: dict | None
    episodes: tuple[Episode, ...]
    sha256: str

    @property
    def kind(self) -> Kind:
        return (
            "tagging"
            if isinstance(self.episodes[0].support[0], TaggedSentence)
            else ("classification")
        )


def read_episodes(path: Path) -> EpisodeFile:
    """The episodes of `path`, in our format or Few-NERD's; a line with a fingerprint that does
    not match its content, a label outside its declared classes, or an item in both support
    and query is refused with the file and line number."""
    if not path.is_file():
        raise SpecError(f"--episodes-file {path}: no such file")
    data = path.read_bytes()
    lines = data.decode("utf-8").splitlines()
    documents = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataFormatError(path, number, f"not a JSON object: {error.msg}") from None
    if not documents:
        raise DataFormatError(path, None, "no episodes in the file")
    first = documents[0][1]
    if isinstance(first, dict) and first.get("format") == FORMAT:
        if first.get("version") != VERSION:
            raise DataFormatError(
                path,
                documents[0][0],
                f"episode file version "
                f"{first.get('version')!r}; this fewshot-bench reads {VERSION}",
            )
        header, body = first, documents[1:]
        episodes = [_ours(path, n, d) for n, d in body]
    else:
        header = None
        episodes = [_few_nerd(path, n, d, i) for i, (n, d) in enumerate(documents)]
    if not episodes:
        raise DataFormatError(path, None, "a header but no episodes")
    return EpisodeFile(path, header, tuple(episodes), sha256_of(data))


def _field(path: Path, number: int, document: object, name: str) -> object:
    if not isinstance(document, dict) or name not in document:
        raise DataFormatError(path, number, f"an episode needs the field {name!r}")
    return document[name]


def _item(path: Path, number: int, document: object) -> Item:
    if not isinstance(document, dict) or "uid" not in document:
        raise DataFormatError(path, number, f"an item needs a uid, got {document!r:.80}")
    if "tokens" in document:
        tokens, tags = tuple(document["tokens"]), tuple(document.get("tags", ()))
        if len(tokens) != len(tags):
            raise DataFormatError(
                path, number, f"item {document['uid']}: {len(tokens)} tokens but {len(tags)} tags"
            )
        return TaggedSentence(str(document["uid"]), tokens, tags)
    spans = tuple(tuple(span) for span in document.get("spans", ()))
    return Example(str(document["uid"]), document["text"], document["label"], spans)  # type: ignore[arg-type]


def _labels(item: Item) -> set[str]:
    if isinstance(item, TaggedSentence):
        return set(item.types)
    return {item.label}


def _ours(path: Path, number: int, document: object) -> Episode:
    classes = tuple(_field(path, number, document, "classes"))  # type: ignore[arg-type]
    support = [_item(path, number, x) for x in _field(path, number, document, "support")]  # type: ignore[union-attr]
    query = [_item(path, number, x) for x in _field(path, number, document, "query")]  # type: ignore[union-attr]
    _check_disjoint(path, number, support, query, by_content=False)
    outside = sorted(set().union(*map(_labels, (*support, *query))) - set(classes))
    if outside:
        raise DataFormatError(
            path,
            number,
            f"label(s) {', '.join(outside)} are not among the "
            f"episode's classes {', '.join(classes)}",
        )
    episode = make_episode(
        classes,
        support,
        query,
        int(_field(path, number, document, "seed")),  # type: ignore[arg-type]
        int(_field(path, number, document, "index")),
    )  # type: ignore[arg-type]
    given = _field(path, number, document, "fingerprint")
    if given != episode.fingerprint:
        raise DataFormatError(
            path,
            number,
            f"fingerprint {str(given)[:16]}... does not match the "
            f"episode's content ({episode.fingerprint[:16]}...): the file was "
            "edited or corrupted",
        )
    return episode


def bio_from_io(labels: Sequence[str]) -> tuple[str, ...]:
    """Few-NERD's IO tags (a type name or `O`) as BIO: a run of one type is one entity."""
    tags, previous = [], "O"
    for label in labels:
        tags.append("O" if label == "O" else ("I-" if label == previous else "B-") + label)
        previous = label
    return tuple(tags)


def _sentences(path: Path, number: int, part: object, name: str, index: int) -> list[Item]:
    words, labels = _field(path, number, part, "word"), _field(path, number, part, "label")
    if len(words) != len(labels):  # type: ignore[arg-type]
        raise DataFormatError(
            path,
            number,
            f"{name}: {len(words)} sentences but "  # type: ignore[arg-type]
            f"{len(labels)} label lists",
        )  # type: ignore[arg-type]
    sentences: list[Item] = []
    for i, (tokens, tags) in enumerate(zip(words, labels, strict=True)):  # type: ignore[call-overload]
        if len(tokens) != len(tags):
            raise DataFormatError(
                path, number, f"{name} sentence {i}: {len(tokens)} words but {len(tags)} labels"
            )
        sentences.append(TaggedSentence(f"e{index}-{name}-{i}", tuple(tokens), bio_from_io(tags)))
    return sentences


def _few_nerd(path: Path, number: int, document: object, index: int) -> Episode:
    types = _field(path, number, document, "types")
    support = _sentences(path, number, _field(path, number, document, "support"), "support", index)
    query = _sentences(path, number, _field(path, number, document, "query"), "query", index)
    _check_disjoint(path, number, support, query, by_content=True)
    outside = sorted(set().union(*map(_labels, (*support, *query))) - set(types))  # type: ignore[arg-type]
    if outside:
        raise DataFormatError(
            path,
            number,
            f"label(s) {', '.join(outside)} are not among the episode's types {', '.join(types)}",
        )  # type: ignore[arg-type]
    return make_episode(tuple(types), support, query, 0, index)  # type: ignore[arg-type]


def _check_disjoint(
    path: Path, number: int, support: Sequence[Item], query: Sequence[Item], by_content: bool
) -> None:
    """Refuse an item in both support and query: by uid, or (Few-NERD files, whose sentences
    have no ids) by its tokens."""
    if by_content:
        seen = {x.tokens for x in support}  # type: ignore[union-attr]
        shared = [" ".join(x.tokens)[:60] for x in query if x.tokens in seen]  # type: ignore[union-attr]
    else:
        shared = sorted({x.uid for x in support} & {x.uid for x in query})
    if shared:
        raise DataFormatError(
            path, number, f"item(s) in both support and query: {', '.join(shared[:3])}"
        )


@dataclass(frozen=True)
class FileEpisodes:
    """The episodes of an episode file as a fixed source: evaluated as they are, whatever N, K,
    Q, seeds and count were asked (the file says them)."""

    file: EpisodeFile
    fixed: bool = True

    @property
    def kind(self) -> Kind:
        return self.file.kind

    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({c for e in self.file.episodes for c in e.classes}))

    def size(self) -> int:
        return len({x.uid for e in self.file.episodes for x in (*e.support, *e.query)})

    def check(self, spec: EpisodeSpec, where: str) -> None:
        return None  # read_episodes checked every episode

    def effective(
        self, spec: EpisodeSpec, seeds: Sequence[int], count: int
    ) -> tuple[EpisodeSpec, tuple[int, ...], int]:
        """The file's spec, its seeds and episodes per seed (one run of all its episodes when
        its seeds hold unequal numbers of them)."""
        episodes = self.file.episodes
        header = self.file.header or {}
        shots = header.get("k_shot") or _shots(episodes[0])
        counts = Counter(e.seed for e in episodes)
        file_seeds = tuple(counts)
        if len(set(counts.values())) > 1:
            file_seeds, per_seed = file_seeds[:1], len(episodes)
        else:
            per_seed = len(episodes) // len(file_seeds)
        queries = header.get("n_query") or 0
        return (
            EpisodeSpec(len(episodes[0].classes), shots, queries, spec.split),
            file_seeds,
            per_seed,
        )

    def episodes(self, spec: EpisodeSpec, seeds: Sequence[int], count: int) -> list[Episode]:
        return list(self.file.episodes)


def _shots(episode: Episode) -> int:
    """K of an episode: the fewest support items (NER: mentions) of one class; Few-NERD's
    greedy sampling gives each type K to 2K support mentions, so this is K or more."""
    if isinstance(episode.support[0], TaggedSentence):
        counts = sum((mentions(s) for s in episode.support), Counter())  # type: ignore[arg-type]
        return min(counts[c] for c in episode.classes)
    return min(sum(1 for x in episode.support if x.label == c) for c in episode.classes)  # type: ignore[union-attr]
