"""Where training runs: the device, CPU threads and mixed precision."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]
Resolved = Literal["bf16", "fp32"]

# CPU flags (Linux /proc/cpuinfo names) of native bf16 matrix multiplication: AMX tiles
# (Sapphire Rapids and later Xeons) and AVX512-BF16 (Cooper Lake, Zen 4 and later).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Standard variables that set the number of CPU threads; torch reads these at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pick_device(name: str | None = None) -> torch.device:
    """`name` if given ("cpu", "cuda:1"), else the first GPU, else the CPU."""
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --- CPU threads ---------------------------------------------------------------------------

_TORCH_THREADS_AT_IMPORT = torch.get_num_threads()
_threads_we_set: int | None = None


def _env_threads() -> int | None:
    for name in THREAD_VARIABLES:
        value = os.environ.get(name, "").strip().split(",")[0]
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_cpu_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads; returns the count in use.

    In order: `threads` when given; else whatever the process was told already, left as it
    is — `OMP_NUM_THREADS` / `MKL_NUM_THREADS` (torch reads them at start-up) or a caller's
    `torch.set_num_threads` since srcore was imported; else the default: torch's own count
    (the host's physical cores), lowered to the cores this process may run on (its CPU
    affinity: `taskset`, a container's cpuset), which torch does not look at.
    """
    global _threads_we_set
    if threads is None:
        current = torch.get_num_threads()
        if _env_threads() is not None:
            return current
        if current not in (_TORCH_THREADS_AT_IMPORT, _threads_we_set):
            return current  # a caller chose it
        threads = min(_TORCH_THREADS_AT_IMPORT, _usable_cores())
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    _threads_we_set = threads
    return threads


# --- precision -----------------------------------------------------------------------------


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first processor in /proc/cpuinfo text (x86 `flags`)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """True where the CPU multiplies bf16 in hardware (AMX or AVX512-BF16).

    Reads /proc/cpuinfo (or the text given); where it has no x86 flags (not Linux, or an ARM
    host) torch's CPU capability decides, and anything but AMX / AVX512-BF16 counts as no:
    oneDNN then emulates bf16, slower than fp32.
    """
    if cpuinfo is None:
        return _host_cpu_has_native_bf16()
    flags = cpu_flags(cpuinfo)
    if flags:
        return any(flag in flags for flag in CPU_BF16_FLAGS)
    capability = torch.backends.cpu.get_cpu_capability().upper()
    return "AMX" in capability or "BF16" in capability


@functools.cache
def _host_cpu_has_native_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    return cpu_has_native_bf16(text)


def cuda_has_native_bf16(device: torch.device | str | int | None = None) -> bool:
    """Ampere (compute capability 8.0) and later have bf16 tensor cores."""
    if not torch.cuda.is_available():
        return False
    major, _minor = torch.cuda.get_device_capability(device)
    return major >= 8


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return cuda_has_native_bf16(device)
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(precision: Precision | str, device: torch.device) -> Resolved:
    """`auto`: bf16 where `device` multiplies bf16 natively (CUDA from compute capability 8.0,
    CPUs with AMX / AVX512-BF16), fp32 elsewhere; `bf16` / `fp32`: as asked."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r} (auto, bf16 or fp32)")
    return precision  # type: ignore[return-value]


def describe_precision(precision: Precision | str, device: torch.device) -> str:
    """What was chosen and why, for logs: "bf16 (auto: cpu has avx512_bf16)"."""
    chosen = resolve_precision(precision, device)
    if precision != "auto":
        return f"{chosen} (asked)"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{chosen} (auto: {torch.cuda.get_device_name(device)}, sm {major}.{minor})"
    if device.type == "cpu":
        try:
            flags = cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
        except OSError:
            flags = set()
        have = [f for f in CPU_BF16_FLAGS if f in flags]
        why = f"cpu has {', '.join(have)}" if have else "no native bf16 on this cpu"
        return f"{chosen} (auto: {why})"
    return f"{chosen} (auto: {device.type})"


@contextlib.contextmanager
def autocast(device: torch.device, precision: Precision | str = "auto") -> Iterator[None]:
    """bf16 autocast where `precision` resolves to bf16; a no-op context for fp32.

    Weights, optimizer state, masks and scores stay fp32: autocast only runs the matrix
    products (and the ops it lists) in bf16.
    """
    if resolve_precision(precision, device) == "bf16":
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    else:
        yield


def precision_info(precision: Precision | str, device: torch.device) -> dict[str, str]:
    """For reports: {"asked": "auto", "used": "bf16", "device": "cpu", "why": "..."}."""
    return {
        "asked": str(precision),
        "used": resolve_precision(precision, device),
        "device": str(device),
        "why": describe_precision(precision, device),
    }
