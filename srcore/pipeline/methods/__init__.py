"""Pruning methods, one module each (`registry.register_method`). Every module of this package
is imported here, so a new method file registers without an edit elsewhere."""

import importlib
import pkgutil

from srcore.pipeline.methods.registry import (
    METHODS,
    ModelFactory,
    PruningMethod,
    pruning_method,
    register_method,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["METHODS", "ModelFactory", "PruningMethod", "pruning_method", "register_method"]
