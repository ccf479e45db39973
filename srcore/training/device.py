"""Where training runs: the device, CPU threads and mixed precision."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]


def pick_device(name: str | None = None) -> torch.device:
    """`name` if given ("cpu", "cuda:1"), else the first GPU, else the CPU."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use the cores this process may run on (not every core of the host); returns the count.

    torch defaults to the host's physical cores, which oversubscribes a container or a
    machine shared through CPU affinity.
    """
    if threads is None:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            threads = os.cpu_count() or 1
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def resolve_precision(precision: Precision, device: torch.device) -> Literal["bf16", "fp32"]:
    """`auto`: bf16 on CUDA, fp32 elsewhere.

    CPU bf16 is only fast on hosts with AMX / AVX512-BF16 (about 3x for MiniLM inference on
    the development machines) and slower elsewhere; ask for "bf16" explicitly to use it.
    """
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return precision


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision = "auto") -> Iterator[None]:
    """bf16 autocast where asked for; a no-op context for fp32."""
    if resolve_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield
