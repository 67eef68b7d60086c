"""The episode sampler: a pure function of (class pool, spec, seed, episode index).

Episode `i` of seed `s` is drawn from its own generator, seeded from a hash of `(s, i)`, so any
episode can be regenerated alone and adding episodes never changes earlier ones. Only
`random.Random.random()` is used, whose output for a given integer seed Python guarantees across
versions, so fingerprints stay put when Python is upgraded.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from benchmark.errors import SpecError
from benchmark.types import Episode, EpisodeSpec, Example

Pool = Mapping[str, Sequence[Example]]
SAMPLER_VERSION = 1  # bump whenever the same (pool, spec, seed, index) would give another episode


def _rng(purpose: str, seed: int, index: int) -> random.Random:
    digest = hashlib.sha256(f"fewshot-bench/{purpose}/{seed}/{index}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def episode_rng(seed: int, index: int) -> random.Random:
    """The generator that draws episode `index` under `seed`, independent of every other one."""
    return _rng("episode", seed, index)


def method_rng(seed: int, index: int) -> random.Random:
    """The generator a method may use on episode `index` of `seed` (separate from sampling)."""
    return _rng("method", seed, index)


def choose(rng: random.Random, n: int, k: int) -> list[int]:
    """`k` distinct indices from `range(n)` in draw order (a partial Fisher-Yates shuffle)."""
    order = list(range(n))
    for i in range(k):
        j = i + int(rng.random() * (n - i))
        order[i], order[j] = order[j], order[i]
    return order[:k]


def check_spec(pool: Pool, spec: EpisodeSpec, where: str) -> None:
    """Fail before any compute when `pool` cannot give `spec` episodes; `where` names the pool."""
    for name, value in (("n_way", spec.n_way), ("k_shot", spec.k_shot), ("n_query", spec.n_query)):
        if value < 1:
            raise SpecError(f"{name} must be at least 1, got {value}")
    if spec.n_way > len(pool):
        raise SpecError(f"n_way={spec.n_way} is larger than the {len(pool)} classes of {where}")
    need = spec.k_shot + spec.n_query
    if not pool:
        return
    smallest = min(pool, key=lambda label: len(pool[label]))
    if need > len(pool[smallest]):
        raise SpecError(
            f"k_shot + n_query = {spec.k_shot} + {spec.n_query} = {need} is larger than the "
            f"smallest class of {where}: {smallest!r} has {len(pool[smallest])} examples"
        )


def fingerprint(
    classes: Sequence[str], support: Sequence[Example], query: Sequence[Example]
) -> str:
    """sha256 over the classes and every example's uid, label and text, in episode order."""
    h = hashlib.sha256()
    h.update(("classes\t" + "\t".join(classes) + "\n").encode())
    for part, examples in (("support", support), ("query", query)):
        for e in examples:
            h.update(f"{part}\t{e.uid}\t{e.label}\t{e.text}\n".encode())
    return h.hexdigest()


def sample_episode(pool: Pool, spec: EpisodeSpec, seed: int, index: int) -> Episode:
    """Episode `index` of `seed`: N classes, K support and Q query examples per class.

    `pool` maps each label of the split to its examples; labels are taken in sorted order and
    examples in the given order, so the same pool always gives the same episode.
    """
    rng = episode_rng(seed, index)
    labels = sorted(pool)
    classes = tuple(labels[i] for i in choose(rng, len(labels), spec.n_way))
    support: list[Example] = []
    query: list[Example] = []
    for label in classes:
        members = pool[label]
        picked = [members[i] for i in choose(rng, len(members), spec.k_shot + spec.n_query)]
        support.extend(picked[: spec.k_shot])
        query.extend(picked[spec.k_shot :])
    return Episode(
        classes=classes,
        support=tuple(support),
        query=tuple(query),
        fingerprint=fingerprint(classes, support, query),
        index=index,
        seed=seed,
    )


def sample_episodes(pool: Pool, spec: EpisodeSpec, seed: int, count: int) -> list[Episode]:
    """Episodes `0 .. count-1` of `seed`."""
    return [sample_episode(pool, spec, seed, i) for i in range(count)]


def combined_fingerprint(episodes: Sequence[Episode]) -> str:
    """One sha256 over the fingerprints of a sequence of episodes: equal iff same episodes."""
    h = hashlib.sha256()
    for episode in episodes:
        h.update(episode.fingerprint.encode())
    return h.hexdigest()
