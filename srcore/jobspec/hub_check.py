"""Whether a hub model id can load on a machine without the network (torch-free): the API
checks it at submission instead of a worker failing a minute later.

Only where the process is offline (HF_HUB_OFFLINE): then a hub id loads only from the local
hub cache, which `huggingface_hub.try_to_load_from_cache` reads without the network. The API
and the workers of the embedded service share that cache; a service whose workers have
another cache should leave HF_HUB_OFFLINE unset on the API.
"""

from __future__ import annotations

import os

from srcore.jobspec.spec_paths import is_local_model_path

# The names srcore.models bundles (a test keeps them in step).
BUNDLED_MODEL_NAMES = ("all-MiniLM-L6-v2",)


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def offline_model_problem(name_or_path: str, revision: str | None = None) -> str | None:
    """Why the model cannot load here, offline; None when it can (or when we are online)."""
    if name_or_path in BUNDLED_MODEL_NAMES or is_local_model_path(name_or_path):
        return None
    if not hub_offline():
        return None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name_or_path, "config.json", revision=revision)
    except ValueError:  # not a valid repository id: the spec's own check names it
        return None
    if isinstance(cached, str):
        return None
    return (
        f"{name_or_path!r} is not in this service's hub cache and the service is offline "
        f"(HF_HUB_OFFLINE): use the bundled {BUNDLED_MODEL_NAMES[0]!r}, a local model directory "
        "under the service's data roots, or download the model into the cache first"
    )
