"""Stable import path for plug-ins: the value types, now defined in `benchmark.core.types`.

Plug-ins written against `from benchmark.types import Example, Episode, ...` keep working; new
code imports from `benchmark.core.types`. Nothing inside the package imports this module.
"""

from benchmark.core.types import (
    Encoder,
    EncoderOptions,
    Episode,
    EpisodeSource,
    EpisodeSpec,
    Example,
    Item,
    ItemTable,
    Kind,
    Located,
    TaggedSentence,
    Task,
    TaskCard,
    TaskEntry,
    located_episode,
)

__all__ = [
    "Encoder",
    "EncoderOptions",
    "Episode",
    "EpisodeSource",
    "EpisodeSpec",
    "Example",
    "Item",
    "ItemTable",
    "Kind",
    "Located",
    "TaggedSentence",
    "Task",
    "TaskCard",
    "TaskEntry",
    "located_episode",
]
