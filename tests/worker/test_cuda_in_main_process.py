"""The worker's main process never starts CUDA: its forked job processes could not use the GPU.

Not only a CUDA context poisons fork: `torch.cuda.is_available()` / `device_count()` outside
NVML mode call cudaGetDeviceCount, which starts the driver. This machine's torch is a CPU
build, which has no CUDA entry points at all, so each test runs in a fresh interpreter that
first gives torch a CUDA build's two driver entry points (`torch._C._cuda_getDeviceCount`,
`_cuda_init`) as recorders returning "no GPU" — fake hardware — then boots the worker the way
Celery does (`app.WorkController(...)` sends `worker_init`, which runs the preload)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BOOT = textwrap.dedent(
    """
    import json, os, sys, traceback
    import torch

    calls = []

    def driver(name, result):
        def call(*args, **kwargs):
            calls.append(name + " from " + "".join(traceback.format_stack(limit=8)))
            return result
        return call

    torch._C._cuda_getDeviceCount = driver("_cuda_getDeviceCount", 0)
    torch._C._cuda_init = driver("_cuda_init", None)
    assert torch.cuda._is_compiled()  # torch now takes itself for a CUDA build

    import worker.celery_app, worker.lease, worker.reconciler, worker.reporting, worker.results
    import worker.tasks
    from persistence.settings import Settings, WorkerSettings

    worker.celery_app.PRELOAD_MODULES += tuple(sys.argv[1:])
    app = worker.celery_app.make_celery_app(Settings(), WorkerSettings())
    try:
        app.WorkController(concurrency=1, queues=["gpu", "cpu"], pool_cls="prefork")
    except SystemExit as exc:
        print(json.dumps({"refused": str(exc), "calls": calls}))
        sys.exit(3)
    print(json.dumps({
        "calls": calls,
        "preloaded": "srcore.pipeline" in sys.modules,
        "is_initialized": torch.cuda.is_initialized(),
        "_initialized": torch.cuda._initialized,
        "nvml_check": os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK"),
    }))
    """
)


def boot(tmp_path: Path, *extra_modules: str, **env: str) -> tuple[int, dict]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    environ.update({"SRNET_HOME": str(tmp_path / "home"), "SRNET_ENVIRONMENT": "test",
                    "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", **env})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", BOOT, *extra_modules],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, f"rc {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result.returncode, json.loads(lines[-1])


def test_importing_and_preloading_the_worker_starts_no_cuda(tmp_path):
    code, seen = boot(tmp_path)
    assert code == 0, seen
    assert seen["preloaded"]  # the preload ran: torch, transformers and the pipeline imported
    assert seen["calls"] == []  # no driver entry point, at import or in the preload
    assert seen["is_initialized"] is False and seen["_initialized"] is False
    # Any later is_available()/device_count() in the main process (and the job processes,
    # which inherit it) asks NVML, which does not poison fork.
    assert seen["nvml_check"] == "1"


def test_a_module_that_probes_cuda_at_import_stops_the_worker(tmp_path):
    # A library that looks for a GPU when imported, and hides its own errors (some do).
    (tmp_path / "gpu_probing_library.py").write_text(
        "import torch\ntry:\n    HAVE_GPU = torch.cuda.device_count() > 0\n"
        "except Exception:\n    HAVE_GPU = False\n"
    )
    code, seen = boot(tmp_path, "gpu_probing_library")
    assert code == 3, seen
    assert "started CUDA in its main process" in seen["refused"]
    assert "torch._C._cuda_getDeviceCount()" in seen["refused"]
    assert "gpu_probing_library.py" in seen["refused"]  # the stack names the culprit
    assert seen["calls"] == []  # the tripwire, not the driver, took the call


def test_a_worker_without_gpus_refuses_two_jobs_at_once_on_a_gpu_host(tmp_path):
    """The real `srnet worker` command: the refusal stops it (Celery would log and ignore an
    exception raised in its worker_init signal)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    environ.update({"SRNET_HOME": str(tmp_path / "home"), "SRNET_ENVIRONMENT": "test",
                    "SRNET_WORKER_PRELOAD": "false", "CUDA_VISIBLE_DEVICES": "0,1"})  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "srnet", "worker", "--queues", "gpu", "--concurrency", "2"],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "concurrency 2 on the gpu queue without --gpus would run 2 jobs on the first GPU" in (
        result.stderr
    )
    assert "srnet worker --gpus all (or --gpus 0,1" in result.stderr
    assert " ready." not in result.stdout + result.stderr
