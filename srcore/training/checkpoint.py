"""Resumable checkpoints, written atomically.

Layout of a checkpoint directory:

    latest                 name of the newest complete checkpoint (replaced atomically)
    step-00000120/         one complete checkpoint
        model.pt           model state_dict (+ trainable tensors that live outside the model)
        trainer.pt         optimizer, scheduler, step, sampler position, RNG states,
                           history, best metrics, hook state
        meta.json          step and config, for people
    best-00000100.pt       the best snapshot so far, shared by the checkpoints that point to it

A checkpoint is first written to a temporary directory, then renamed into place, then named in
`latest`; a crash at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srcore.files import atomic_write_bytes

LATEST = "latest"


def capture_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Python, numpy and CPU torch generators, and on CUDA `device`'s generator."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        # Only the training device's generator: a resume may see another number of GPUs.
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def cuda_rng_state_for(saved: Any, device: torch.device) -> torch.Tensor:
    """The CUDA generator state of `device` in a checkpoint's `rng["cuda"]`.

    Checkpoints hold one state (a tensor). Older ones hold a list with every visible GPU's:
    take the entry of `device`'s index when there is one, else the first (the job ran on
    the first visible device: `pick_device` takes "cuda").
    """
    if isinstance(saved, torch.Tensor):
        return saved
    states = list(saved)
    if not states:
        raise ValueError("checkpoint has an empty list of CUDA RNG states")
    index = device.index if device.index is not None else 0
    return states[index] if index < len(states) else states[0]


def restore_rng_state(state: dict[str, Any], device: torch.device | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device is not None and device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(cuda_rng_state_for(state["cuda"], device), device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _save(obj: Any, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def best_file_name(best_step: int) -> str:
    return f"best-{best_step:08d}.pt"


def save_checkpoint(
    root: Path,
    step: int,
    model_state: dict[str, Any],
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    best_step: int | None = None,
    best_snapshot: Any = None,
    write_best: bool = False,
) -> Path:
    """Write checkpoint `step` under `root` and make it the latest; returns its directory.

    The best snapshot lives in `best-<best_step>.pt`, shared by the checkpoints after it;
    `write_best` (re)writes it (a new best, or the first checkpoint of a fresh run, which
    must not trust a file an earlier run left). Older checkpoints and unreferenced best
    files are removed afterwards.
    """
    root.mkdir(parents=True, exist_ok=True)
    best_name = None
    if best_step is not None:
        best_name = best_file_name(best_step)
        if write_best or not (root / best_name).exists():
            tmp_best = root / f".{best_name}.tmp"
            _save(best_snapshot, tmp_best)
            os.replace(tmp_best, root / best_name)
    name = f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{name}."))
    _save(model_state, tmp / "model.pt")
    _save({**trainer_state, "best_file": best_name}, tmp / "trainer.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
    _fsync_dir(tmp)
    final = root / name
    if final.exists():  # the same step written again (e.g. resumed and stopped at once)
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(root / LATEST, name.encode())
    _fsync_dir(root)
    _remove_stale(root, keep=name, keep_best=best_name)
    return final


def _remove_stale(root: Path, keep: str, keep_best: str | None) -> None:
    for path in root.iterdir():
        if path.name.startswith("step-") and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith("best-") and path.name != keep_best:
            path.unlink(missing_ok=True)
        elif path.name.startswith(".step-") or path.name.startswith(".best-"):
            # leftovers of an interrupted write
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / LATEST
    if not pointer.exists():
        return None
    path = root / pointer.read_text().strip()
    return path if (path / "trainer.pt").exists() else None


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """(model state, trainer state, best snapshot or None) of the checkpoint at `path`."""
    model_state = torch.load(path / "model.pt", map_location="cpu", weights_only=False)
    trainer_state = torch.load(path / "trainer.pt", map_location="cpu", weights_only=False)
    best = None
    if trainer_state.get("best_file"):
        best = torch.load(
            path.parent / trainer_state["best_file"], map_location="cpu", weights_only=False
        )
    return model_state, trainer_state, best
