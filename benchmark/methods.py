"""Stable import path for plug-ins: the method protocol, now defined in `benchmark.core.methods`.

Plug-ins written against `from benchmark.methods import MethodContext, MethodEntry` keep working;
new code imports from `benchmark.core.methods`. Nothing inside the package imports this module.
"""

from benchmark.core.methods import (
    METHODS,
    Method,
    MethodContext,
    MethodEntry,
    NoOptions,
    Predictor,
    TagPredictor,
    label_index,
    resolve_method,
)

__all__ = [
    "METHODS",
    "Method",
    "MethodContext",
    "MethodEntry",
    "NoOptions",
    "Predictor",
    "TagPredictor",
    "label_index",
    "resolve_method",
]
