"""`srnet push`: a finished job's checkpoint to the Hugging Face hub (huggingface_hub's
`create_repo` + `upload_folder`; the folder carries its model card). Needs a token
(`--hf-token`, $HF_TOKEN or `huggingface-cli login`) and the network; offline or without a token
it fails at once with a message saying which."""

from __future__ import annotations

import os
from pathlib import Path


class HubPushError(Exception):
    """The checkpoint could not be pushed (offline, no token, the hub refused)."""


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def push_checkpoint(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = True,
    commit_message: str | None = None,
) -> str:
    """Upload a checkpoint directory to `repo_id` (created if needed, private by default);
    answers the repository URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_token

    path = Path(folder)
    if not (path / "config.json").is_file():
        raise HubPushError(f"{path} is not a checkpoint directory (no config.json)")
    if _offline():
        raise HubPushError("HF_HUB_OFFLINE is set: pushing to the hub needs the network")
    token = token or get_token()
    if not token:
        raise HubPushError(
            "no Hugging Face token: pass --hf-token, set HF_TOKEN or run `huggingface-cli login`"
        )
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=path,
            commit_message=commit_message or f"SRNet checkpoint {path.name}",
        )
    except HfHubHTTPError as exc:
        raise HubPushError(f"the hub refused {repo_id}: {exc}") from exc
    except OSError as exc:  # DNS, refused connection, timeouts
        raise HubPushError(f"the hub could not be reached: {exc}") from exc
    return str(url)
