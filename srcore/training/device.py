"""Where training runs: the device, CPU threads and mixed precision."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

Precision = Literal["auto", "bf16", "fp32"]
Resolved = Literal["bf16", "fp32"]

# CPU flags (Linux /proc/cpuinfo names) of native bf16 matrix multiplication: AMX tiles
# (Sapphire Rapids and later Xeons) and AVX512-BF16 (Cooper Lake, Zen 4 and later).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# Standard variables that set the number of CPU threads; torch reads these at start-up.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pick_device(name: str | None = None) -> torch.device:
    """`name` if given ("cpu", "cuda:1"), else "cuda" where a GPU is visible, else the CPU.

    "cuda" is the first visible GPU: a worker pins one GPU per process with
    CUDA_VISIBLE_DEVICES (and hides them all for cpu-queue jobs), so it is the pinned one.
    Importing this module touches no CUDA; this call asks `torch.cuda.is_available()`.
    """
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


class DeviceSettingError(ValueError):
    """A training setting this device cannot honour (a job error: not retried)."""


def resolve_precision(precision: Precision | str, device: torch.device) -> Resolved:
    """`auto`: bf16 where `device` multiplies bf16 natively (CUDA from compute capability 8.0,
    CPUs with AMX / AVX512-BF16), fp32 elsewhere; `bf16` / `fp32`: as asked.

    `bf16` on a GPU below compute capability 8.0 is refused: it has no bf16 tensor cores, so
    bf16 would run emulated, slower than fp32 and with bf16's rounding. (A CPU without native
    bf16 is allowed: oneDNN emulates it, which the bf16 benches use to compare.)
    """
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r} (auto, bf16 or fp32)")
    if precision == "bf16" and device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        check_cuda_bf16(capability, torch.cuda.get_device_name(device))
    return precision  # type: ignore[return-value]


def check_cuda_bf16(capability: tuple[int, int], name: str) -> None:
    """Raise DeviceSettingError below compute capability 8.0."""
    if tuple(capability) < (8, 0):
        major, minor = capability
        raise DeviceSettingError(
            f"training.precision: bf16 needs a GPU of compute capability 8.0 or later (bf16 "
            f"tensor cores); {name} is {major}.{minor}. Use precision fp32 (or auto, which "
            "picks fp32 there)."
        )


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


def precision_info(
    precision: Precision | str,
    device: torch.device,
    *,
    tf32: bool = True,
    deterministic: bool = False,
) -> dict[str, Any]:
    """For reports: {"asked": "auto", "used": "bf16", "device": "cpu", "why": "...",
    "tf32": false, "tf32_asked": true, "deterministic": false}; "tf32" is whether fp32
    matrix products may use TF32 on this device (see `numerics_plan`)."""
    plan = numerics_plan(device, tf32=tf32, deterministic=deterministic)
    return {
        "asked": str(precision),
        "used": resolve_precision(precision, device),
        "device": str(device),
        "why": describe_precision(precision, device),
        "tf32": plan.tf32,
        "tf32_asked": tf32,
        "deterministic": plan.deterministic,
    }


# --- TF32 and deterministic algorithms -------------------------------------------------------

# cuBLAS is deterministic with a fixed workspace; the variable must be set before the first
# cuBLAS call of the process (torch creates the handle then). Set here, at import, before
# `pick_device` or anything else in srcore touches CUDA; ":4096:8" costs about 32 MB.
CUBLAS_WORKSPACE = ":4096:8"
DETERMINISTIC_WORKSPACES = (":4096:8", ":16:8")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


@dataclass(frozen=True)
class NumericsPlan:
    """How matrix products run: TF32 allowed for fp32 products, deterministic algorithms."""

    tf32: bool
    deterministic: bool
    why: str


def plan_numerics(
    device_type: str,
    capability: tuple[int, int] | None,
    *,
    tf32: bool,
    deterministic: bool,
) -> NumericsPlan:
    """The decision alone (tested with made-up capabilities): TF32 where asked and the GPU has
    TF32 tensor cores (compute capability 8.0+); never on a CPU."""
    if device_type != "cuda":
        return NumericsPlan(False, deterministic, f"{device_type}: no TF32")
    assert capability is not None
    major, minor = capability
    if not tf32:
        return NumericsPlan(False, deterministic, "training.tf32 false: full fp32 products")
    if tuple(capability) < (8, 0):
        return NumericsPlan(False, deterministic, f"sm {major}.{minor} has no TF32")
    return NumericsPlan(True, deterministic, f"sm {major}.{minor}: fp32 products in TF32")


def numerics_plan(device: torch.device, *, tf32: bool, deterministic: bool) -> NumericsPlan:
    capability = torch.cuda.get_device_capability(device) if device.type == "cuda" else None
    return plan_numerics(device.type, capability, tf32=tf32, deterministic=deterministic)


def apply_numerics(device: torch.device, *, tf32: bool, deterministic: bool) -> NumericsPlan:
    """Set torch's process-wide TF32 and determinism switches for a job on `device`.

    Deterministic: `torch.use_deterministic_algorithms(True)` (an op without a deterministic
    implementation raises instead of running), cuDNN deterministic with benchmark off, and
    cuBLAS's fixed workspace. Off: torch's defaults (cuDNN benchmark stays off: padded batch
    shapes vary, so autotuning would rarely pay).
    """
    plan = numerics_plan(device, tf32=tf32, deterministic=deterministic)
    if plan.deterministic and device.type == "cuda":
        workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        if workspace not in DETERMINISTIC_WORKSPACES:
            raise DeviceSettingError(
                f"training.deterministic: CUBLAS_WORKSPACE_CONFIG is {workspace!r}; cuBLAS is "
                f"deterministic only with {' or '.join(DETERMINISTIC_WORKSPACES)}, set before "
                "the process first uses CUDA"
            )
    torch.backends.cuda.matmul.allow_tf32 = plan.tf32
    torch.backends.cudnn.allow_tf32 = plan.tf32
    torch.use_deterministic_algorithms(plan.deterministic)
    torch.backends.cudnn.deterministic = plan.deterministic
    torch.backends.cudnn.benchmark = False
    return plan


# --- which device a job ran on -----------------------------------------------------------------


def describe_device(device: torch.device) -> dict[str, Any]:
    """What a lab needs to know where a number came from; JSON-serialisable.

    CUDA: the GPU's name, UUID (as nvidia-smi prints it), memory, compute capability, the CUDA
    runtime torch was built with and the driver version (NVML through `pynvml` when it is
    installed, else /proc/driver/nvidia/version, else null with the reason), and
    CUDA_VISIBLE_DEVICES (the worker pins one GPU per process). CPU: the model, torch's
    threads, the cores this process may use and the bf16 flags.
    """
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        driver, source = cuda_driver_version()
        return cuda_description(props, torch.version.cuda, driver, source, device)
    if device.type == "cpu":
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
        return cpu_description(cpuinfo, torch.get_num_threads(), _usable_cores())
    return {"type": device.type, "name": str(device)}


def cuda_description(
    props: Any,
    cuda_runtime: str | None,
    driver: str | None,
    driver_source: str,
    device: torch.device,
) -> dict[str, Any]:
    """The record of `torch.cuda.get_device_properties(device)` (any object with its fields)."""
    uuid = getattr(props, "uuid", None)
    uuid_text = None if uuid is None else str(uuid)
    if uuid_text and not uuid_text.startswith(("GPU-", "MIG-")):
        uuid_text = f"GPU-{uuid_text}"
    return {
        "type": "cuda",
        "index": device.index if device.index is not None else 0,
        "name": props.name,
        "uuid": uuid_text,
        "total_memory_bytes": int(props.total_memory),
        "total_memory_gib": round(props.total_memory / 1024**3, 2),
        "compute_capability": f"{props.major}.{props.minor}",
        "multiprocessors": getattr(props, "multi_processor_count", None),
        "cuda_runtime": cuda_runtime,
        "driver": driver,
        "driver_source": driver_source,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def cpu_description(cpuinfo: str, threads: int, usable_cores: int) -> dict[str, Any]:
    model = None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            model = value.strip()
            break
    flags = cpu_flags(cpuinfo)
    return {
        "type": "cpu",
        "name": model,
        "threads": threads,
        "usable_cores": usable_cores,
        "logical_cpus": os.cpu_count(),
        "bf16_flags": [f for f in CPU_BF16_FLAGS if f in flags],
        "native_bf16": cpu_has_native_bf16(cpuinfo),
    }


NVIDIA_PROC_VERSION = Path("/proc/driver/nvidia/version")


def cuda_driver_version(proc_version: Path = NVIDIA_PROC_VERSION) -> tuple[str | None, str]:
    """(driver version, where it came from or why it is missing)."""
    try:
        import pynvml  # nvidia-ml-py; optional
    except ImportError:
        pynvml = None
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            try:
                version = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            return (version.decode() if isinstance(version, bytes) else str(version)), "nvml"
        except Exception as exc:  # NVML present but unusable (no driver, container limits)
            nvml_problem = f"nvml failed: {exc}"
    else:
        nvml_problem = "pynvml not installed"
    try:
        text = proc_version.read_text(errors="replace")
    except OSError:
        return None, f"{nvml_problem}; {proc_version} not readable"
    version = parse_nvidia_proc_version(text)
    if version is None:
        return None, f"{nvml_problem}; no version in {proc_version}"
    return version, str(proc_version)


def parse_nvidia_proc_version(text: str) -> str | None:
    """ "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar 5 ..." → "550.54.15"."""
    for line in text.splitlines():
        if line.startswith("NVRM version:"):
            for word in line.split():
                parts = word.split(".")
                if len(parts) >= 2 and all(p.isdigit() for p in parts):
                    return word
    return None


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """torch's intra-op threads set to `n` inside the block, restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
