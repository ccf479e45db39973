"""Bit-packed mask files (safetensors).

Layout: one uint8 tensor per masked parameter, keyed by the parameter's own name, holding the
flattened (row-major) bool mask packed 8 per byte in LITTLE-endian bit order (numpy
`packbits(..., bitorder="little")`: element i is bit i % 8 of byte i // 8; 1 = kept). Extra
float tensors (scenario 3: the frozen random classifier) are stored under `weights/<name>`.
The safetensors metadata (string → string) holds JSON values: `format`, `bit_order`,
`shapes`, `weights` (the extra tensors' names) and whatever the caller adds (sparsity report,
threshold, spec hash).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from srcore.jobspec.canonical import canonical_json
from srcore.pruning.magnitude import apply_masks

FORMAT = "srnet-mask/1"
BIT_ORDER = "little"
WEIGHTS_PREFIX = "weights/"
_RESERVED = ("format", "bit_order", "shapes", "weights")


def pack_mask(keep: Tensor) -> Tensor:
    bits = keep.detach().to("cpu", torch.bool).contiguous().reshape(-1).numpy()
    return torch.from_numpy(np.packbits(bits, bitorder=BIT_ORDER))


def unpack_mask(packed: Tensor, shape: tuple[int, ...]) -> Tensor:
    n = int(np.prod(shape)) if shape else 1
    bits = np.unpackbits(packed.numpy(), count=n, bitorder=BIT_ORDER).astype(bool)
    return torch.from_numpy(bits).reshape(shape)


def save_masks(
    path: str | os.PathLike[str],
    masks: Mapping[str, Tensor],
    metadata: Mapping[str, Any] | None = None,
    weights: Mapping[str, Tensor] | None = None,
) -> Path:
    """Write atomically (temp file in the same folder, fsync, rename). Returns the path.

    `metadata` values must be JSON-serialisable; `weights` are stored as float tensors
    (e.g. `{"classifier.weight": ..., "classifier.bias": ...}` for scenario 3).
    """
    path = Path(path)
    clash = [key for key in (metadata or {}) if key in _RESERVED]
    if clash:
        raise ValueError(f"metadata keys {clash} are reserved")
    tensors: dict[str, Tensor] = {name: pack_mask(keep) for name, keep in masks.items()}
    weights = dict(weights or {})
    for name, value in weights.items():
        tensors[WEIGHTS_PREFIX + name] = value.detach().to("cpu").contiguous()
    header = {
        "format": FORMAT,
        "bit_order": BIT_ORDER,
        "shapes": {name: list(keep.shape) for name, keep in masks.items()},
        "weights": sorted(weights),
        **dict(metadata or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={k: json.dumps(v) for k, v in header.items()})
        _canonical_header(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _canonical_header(path: str) -> None:
    """Rewrite the safetensors header with sorted keys: safetensors writes its metadata from a
    hash map whose order changes per process, so identical masks got different bytes (and
    sha256). Same tensors, same offsets; only the header's key order changes."""
    with open(path, "r+b") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
        encoded = canonical_json(header).encode("utf-8")
        encoded += b" " * (-len(encoded) % 8)  # safetensors pads the header to 8 bytes
        f.seek(0)
        f.write(struct.pack("<Q", len(encoded)) + encoded + data)
        f.truncate()


def _read(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 - not a dict
    metadata = {key: json.loads(value) for key, value in raw.items()}
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{path}: not an srnet mask file (format {metadata.get('format')!r})")
    if metadata.get("bit_order") != BIT_ORDER:
        raise ValueError(f"{path}: unsupported bit order {metadata.get('bit_order')!r}")
    return tensors, metadata


def load_masks(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(name → bool mask on CPU, metadata with its JSON values decoded)."""
    tensors, metadata = _read(path)
    masks = {
        name: unpack_mask(tensors[name], tuple(shape)) for name, shape in metadata["shapes"].items()
    }
    return masks, metadata


def load_mask_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The extra float tensors saved with the mask (scenario 3's classifier), by name."""
    tensors, metadata = _read(path)
    return {name: tensors[WEIGHTS_PREFIX + name] for name in metadata["weights"]}


@torch.no_grad()
def restore_subnetwork(model: nn.Module, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a mask file into a plain model: copy its stored weights (scenario 3's classifier),
    then zero the pruned weights. Returns the file's metadata."""
    masks, metadata = load_masks(path)
    params = dict(model.named_parameters())
    for name, value in load_mask_weights(path).items():
        if name not in params or params[name].shape != value.shape:
            raise ValueError(f"{path}: stored tensor {name} does not fit the model")
        params[name].copy_(value)
    apply_masks(model, masks)
    return metadata
