"""Which GPUs a worker host has and which worker process gets which one, without CUDA.

`srnet worker --gpus 0,1,2,3` (or SRNET_WORKER_GPUS) runs one Celery worker process per GPU,
each pinned with CUDA_VISIBLE_DEVICES before torch is imported there. The supervisor that
starts them must never initialise CUDA (a forked child of a process that did cannot use the
GPU, and the supervisor would hold a context on GPU 0 for nothing), so it counts GPUs without
torch, in this order:

1. `CUDA_VISIBLE_DEVICES`, when set: the admin restricted this process; its entries (indices or
   `GPU-`/`MIG-` UUIDs) are the GPUs, named as written, and a child gets its entry as is.
2. NVML through `pynvml` (package `nvidia-ml-py`), when installed: index, UUID and name.
3. `nvidia-smi -L`, when on the PATH: the same, parsed from its lines.
4. Otherwise no GPU.

With NVML or nvidia-smi a child is pinned by UUID, not by index: CUDA numbers devices fastest
first unless CUDA_DEVICE_ORDER=PCI_BUS_ID, nvidia-smi numbers them by PCI bus, so an index
could name another GPU in the child than the one the admin listed. MIG instances are not listed
by the probes; pin a worker to one with CUDA_VISIBLE_DEVICES=MIG-... in the supervisor's
environment.

Everything here is plain functions over plain data (no torch), tested on CPU with fake
inventories.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

GPU_QUEUE = "gpu"
CPU_QUEUE = "cpu"
# The value of `--gpus` / SRNET_WORKER_GPUS that takes every visible GPU.
ALL_GPUS = "all"


class GpuAssignmentError(ValueError):
    """A `--gpus` / concurrency request this host cannot honour; the message says why."""


@dataclass(frozen=True)
class VisibleGpu:
    """One GPU as the supervisor sees it."""

    id: str  # how `--gpus` names it: the nvidia-smi index, or the CUDA_VISIBLE_DEVICES entry
    uuid: str | None = None
    name: str | None = None

    @property
    def pin(self) -> str:
        """The child's CUDA_VISIBLE_DEVICES: the UUID when known (immune to device order)."""
        return self.uuid or self.id

    def describe(self) -> str:
        parts = [self.id]
        if self.name:
            parts.append(self.name)
        if self.uuid and self.uuid != self.id:
            parts.append(f"({self.uuid})")
        return " ".join(parts)


@dataclass(frozen=True)
class GpuInventory:
    gpus: tuple[VisibleGpu, ...]
    source: str  # CUDA_VISIBLE_DEVICES, nvml, nvidia-smi or none

    def describe(self) -> str:
        listed = ", ".join(g.describe() for g in self.gpus) or "no GPU"
        return f"{listed} (from {self.source})"


@dataclass(frozen=True)
class WorkerChild:
    """One Celery worker process the supervisor starts."""

    name: str  # gpu0, gpu1, ... or cpu; the Celery node name is <name>@<host>
    queues: tuple[str, ...]
    cuda_visible_devices: str  # "" hides every GPU: the process runs on the CPU
    gpu: VisibleGpu | None = None
    concurrency: int = 1


# --- probing ---------------------------------------------------------------------------------

_UUID_PREFIXES = ("GPU-", "MIG-")


def parse_cuda_visible_devices(value: str) -> tuple[str, ...]:
    """The entries of a CUDA_VISIBLE_DEVICES value, as CUDA reads them: comma-separated
    indices or UUIDs; "" hides every GPU and a negative index ends the list ("-1": none).
    An empty entry ends it too (as in CUDA). Anything else is refused rather than guessed at
    (CUDA would silently drop it and every entry after it)."""
    entries: list[str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry or re.fullmatch(r"-\d+", entry):
            break
        if not (entry.isdigit() or entry.startswith(_UUID_PREFIXES)):
            raise GpuAssignmentError(
                f"CUDA_VISIBLE_DEVICES={value!r}: {entry!r} is neither a GPU index nor a "
                "GPU-/MIG- UUID"
            )
        if entry in entries:
            # CUDA then shows no GPU at all; say so instead.
            raise GpuAssignmentError(f"CUDA_VISIBLE_DEVICES={value!r} names {entry} twice")
        entries.append(entry)
    return tuple(entries)


_SMI_LINE = re.compile(r"^GPU (\d+): (.*?) \(UUID: (GPU-[0-9A-Za-z-]+)\)\s*$")


def parse_nvidia_smi_list(text: str) -> tuple[VisibleGpu, ...]:
    """`nvidia-smi -L` lines ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"); MIG lines,
    indented under their GPU, are skipped."""
    gpus = []
    for line in text.splitlines():
        match = _SMI_LINE.match(line)
        if match:
            gpus.append(VisibleGpu(match.group(1), match.group(3), match.group(2)))
    return tuple(gpus)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_gpus() -> tuple[VisibleGpu, ...] | None:
    """The GPUs NVML lists (None: pynvml missing, or NVML does not start on this host)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            gpus.append(
                VisibleGpu(
                    str(index),
                    _text(pynvml.nvmlDeviceGetUUID(handle)),
                    _text(pynvml.nvmlDeviceGetName(handle)),
                )
            )
        return tuple(gpus)
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def nvidia_smi_gpus(timeout_s: float = 30.0) -> tuple[VisibleGpu, ...] | None:
    """The GPUs `nvidia-smi -L` lists (None: no nvidia-smi on the PATH)."""
    program = shutil.which("nvidia-smi")
    if program is None:
        return None
    result = subprocess.run(
        [program, "-L"], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if result.returncode != 0:
        # nvidia-smi is there but the driver does not answer: a broken GPU host, not a CPU one.
        raise GpuAssignmentError(
            f"nvidia-smi -L failed ({result.returncode}): {result.stderr.strip()[:500]}"
        )
    return parse_nvidia_smi_list(result.stdout)


def probe_gpus(environ: Mapping[str, str] | None = None) -> GpuInventory:
    """The GPUs this process may hand out, without touching CUDA (order: module docstring)."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = parse_cuda_visible_devices(visible)
        gpus = tuple(VisibleGpu(e, e if e.startswith(_UUID_PREFIXES) else None) for e in entries)
        return GpuInventory(gpus, "CUDA_VISIBLE_DEVICES")
    found = nvml_gpus()
    if found is not None:
        return GpuInventory(found, "nvml")
    found = nvidia_smi_gpus()
    if found is not None:
        return GpuInventory(found, "nvidia-smi")
    return GpuInventory((), "none")


# --- assignment ------------------------------------------------------------------------------


def _resolve(inventory: GpuInventory, wanted: str) -> VisibleGpu:
    for gpu in inventory.gpus:
        if wanted in (gpu.id, gpu.uuid):
            return gpu
    raise GpuAssignmentError(
        f"--gpus/SRNET_WORKER_GPUS: GPU {wanted} is not visible; this host has "
        f"{inventory.describe()}"
    )


def plan_worker_children(
    inventory: GpuInventory,
    request: Sequence[str],
    queues: Sequence[str],
    concurrency: int | None = None,
) -> list[WorkerChild]:
    """One pinned `gpu`-queue process per requested GPU, plus one CPU-only process for the
    `cpu` queue when the worker consumes it.

    `request`: GPU ids or UUIDs, or `("all",)` (`WorkerSettings.gpus`, validated there:
    not empty, no id twice).

    `concurrency`: the jobs at once the admin asked for on the gpu queue (None: not asked,
    one per GPU). It must equal the number of GPUs: more would put two jobs on one GPU, fewer
    would leave a listed GPU idle (list fewer GPUs instead).
    """
    if GPU_QUEUE not in queues:
        raise GpuAssignmentError(
            f"--gpus pins gpu-queue workers, but this worker consumes only {', '.join(queues)}"
        )
    if tuple(request) == (ALL_GPUS,):
        gpus = list(inventory.gpus)
        if not gpus:
            raise GpuAssignmentError(f"--gpus all: no GPU visible ({inventory.describe()})")
    else:
        gpus = [_resolve(inventory, w) for w in request]
        doubles = sorted({g.id for g in gpus if gpus.count(g) > 1})
        if doubles:
            raise GpuAssignmentError(
                f"--gpus/SRNET_WORKER_GPUS names GPU {', '.join(doubles)} twice (by index and UUID)"
            )
    if concurrency is not None and concurrency > len(gpus):
        raise GpuAssignmentError(
            f"concurrency {concurrency} is more than the {len(gpus)} GPU(s) given to the gpu "
            "queue: jobs would share a GPU. One job per GPU: drop --concurrency, or list more "
            "GPUs with --gpus"
        )
    if concurrency is not None and concurrency < len(gpus):
        raise GpuAssignmentError(
            f"concurrency {concurrency} is fewer than the {len(gpus)} GPU(s) listed: some "
            "would stay idle. List only the GPUs to use with --gpus (one job per GPU)"
        )
    position = {g: n for n, g in enumerate(inventory.gpus)}
    children = [WorkerChild(f"gpu{position[g]}", (GPU_QUEUE,), g.pin, g) for g in gpus]
    if CPU_QUEUE in queues:
        children.append(WorkerChild("cpu", (CPU_QUEUE,), ""))
    return children


def check_unpinned_concurrency(
    inventory: GpuInventory, queues: Sequence[str], concurrency: int
) -> None:
    """A worker without `--gpus` runs every job on the first GPU it sees: on the gpu queue
    it may run only one at a time where it sees a GPU (a CPU-only host runs gpu-queue jobs
    on the CPU, as many at once as asked)."""
    if GPU_QUEUE not in queues or concurrency <= 1 or not inventory.gpus:
        return
    raise GpuAssignmentError(
        f"concurrency {concurrency} on the gpu queue without --gpus would run {concurrency} "
        f"jobs on the first GPU of {inventory.describe()}. Run one process per GPU: "
        f"srnet worker --gpus all (or --gpus {','.join(g.id for g in inventory.gpus)}; "
        "SRNET_WORKER_GPUS)"
    )


# --- the job's process -----------------------------------------------------------------------


def cuda_initialised() -> bool:
    """Whether this process has a CUDA context (False when torch was never imported)."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


@contextlib.contextmanager
def job_device_environment(queue: str) -> Iterator[None]:
    """A `cpu`-queue job sees no GPU, even on a GPU host: CUDA_VISIBLE_DEVICES="" for the
    job's duration (the job's process is fresh and has not touched CUDA yet; CUDA reads the
    variable when it starts). A `gpu`-queue job keeps the process's own pin."""
    if queue != CPU_QUEUE:
        yield
        return
    if cuda_initialised():
        raise RuntimeError(
            "CUDA was initialised in this process before a cpu-queue job started: the job "
            "would run on the GPU (the prefork pool gives every job a fresh process)"
        )
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before
