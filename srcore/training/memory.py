"""Device memory: what a job used, and the error an out-of-memory becomes.

A CUDA out-of-memory error in training is the job's settings against the GPU's memory: every
attempt fails the same way at the same step, so it is a job error (`DeviceOutOfMemoryError`,
not retried by the worker), with a message that says what ran out, where, and what to lower.
Training never changes its batch by itself (that would change the results); evaluation may
halve its own batch and go on (`srcore.evaluation.predict`), which changes no number.
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
from dataclasses import dataclass
from typing import Any

import torch

GIB = 1024**3


class DeviceOutOfMemoryError(RuntimeError):
    """A stage needs more device memory than there is; the same settings fail again."""

    def __init__(
        self, message: str, *, stage: str, batch_size: int | None, tokens: int | None
    ) -> None:
        super().__init__(message)
        self.stage, self.batch_size, self.tokens = stage, batch_size, tokens


@dataclass(frozen=True)
class MemoryUse:
    device: str
    name: str | None  # the GPU's name
    total_bytes: int | None
    peak_allocated_bytes: int | None  # by this process's tensors (CUDA), or its peak RSS (CPU)
    peak_reserved_bytes: int | None  # by this process's CUDA caching allocator

    def as_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "name": self.name,
            "total_gib": _gib(self.total_bytes),
            "peak_allocated_gib": _gib(self.peak_allocated_bytes),
            "peak_reserved_gib": _gib(self.peak_reserved_bytes),
        }

    def describe(self) -> str:
        """ "cuda:0 (NVIDIA H100, 79.10 GiB; peak 78.90 GiB allocated, 79.00 GiB reserved by
        this job)"."""
        facts = ", ".join(p for p in (self.name, _fmt(self.total_bytes)) if p)
        if self.peak_reserved_bytes is not None:
            peak = (
                f"peak {_fmt(self.peak_allocated_bytes)} allocated, "
                f"{_fmt(self.peak_reserved_bytes)} reserved by this job"
            )
        elif self.peak_allocated_bytes is not None:
            peak = f"peak {_fmt(self.peak_allocated_bytes)} resident"
        else:
            peak = ""
        inside = "; ".join(p for p in (facts, peak) if p)
        return f"{self.device} ({inside})" if inside else self.device


def _gib(value: int | None) -> float | None:
    return None if value is None else round(value / GIB, 2)


def _fmt(value: int | None) -> str | None:
    return None if value is None else f"{value / GIB:.2f} GiB"


def memory_use(device: torch.device) -> MemoryUse:
    """Total memory of `device` and this process's peak use of it."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return MemoryUse(
            device=str(device),
            name=props.name,
            total_bytes=int(props.total_memory),
            peak_allocated_bytes=int(torch.cuda.max_memory_allocated(device)),
            peak_reserved_bytes=int(torch.cuda.max_memory_reserved(device)),
        )
    total = None
    with contextlib.suppress(ValueError, OSError, AttributeError):  # not a POSIX host
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return MemoryUse(str(device), None, total, peak_rss, None)


def release_cached_memory(device: torch.device) -> None:
    """Drop unreachable tensors and hand the CUDA allocator's free blocks back (after an OOM,
    before a smaller retry)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def out_of_memory(
    *,
    stage: str,
    what: str,
    batch_size: int | None,
    tokens: int | None,
    device: torch.device,
    lower: str,
) -> DeviceOutOfMemoryError:
    """The job error for an out-of-memory in `what` ("a training step", "evaluation")."""
    try:
        where = memory_use(device).describe()
    except Exception as exc:  # the device may be unusable after the failure: say so
        where = f"{device} (memory not readable: {exc})"
    shape = "" if batch_size is None else f" (batch {batch_size} × {tokens} tokens)"
    message = (
        f"{stage}: out of memory in {what}{shape} on {where}. Lower {lower}; the job is not "
        "retried (the same settings fail again)."
    )
    return DeviceOutOfMemoryError(message, stage=stage, batch_size=batch_size, tokens=tokens)
