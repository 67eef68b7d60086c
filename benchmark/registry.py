"""Stable import path for plug-ins: the registries, each now defined next to what it holds.

`TASKS`, `HUB_TASKS` and `Registry` live in `benchmark.core.registry`, `METHODS` in
`benchmark.core.methods`, `ENCODERS` in `benchmark.engine.encoders`. Plug-ins written against
`from benchmark.registry import METHODS, TASKS` keep working. Nothing inside the package imports
this module.
"""

from benchmark.core.methods import METHODS
from benchmark.core.registry import HUB_TASKS, TASKS, Registry, import_object
from benchmark.engine.encoders import ENCODERS

__all__ = ["ENCODERS", "HUB_TASKS", "METHODS", "TASKS", "Registry", "import_object"]
