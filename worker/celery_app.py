"""The workers' Celery app: `celery -A worker.celery_app worker` (or `srnet worker`).

Configured from `persistence.settings.Settings` (the broker and the Celery options every sender
shares, `persistence.broker.celery_config`) and `persistence.settings.WorkerSettings`. Sending jobs
(`CeleryJobSender`, the task name) lives in `persistence.broker`, shared with the API.

Delivery: `task_acks_late` + `task_reject_on_worker_lost` + prefetch 1. A message is acknowledged
only when its task returns, so a worker that dies mid-job leaves it unacknowledged and the broker
delivers it again (Redis: after the visibility timeout, SRNET_BROKER_VISIBILITY_TIMEOUT_S, 7 days
by default, longer than any job). In practice the reconciler is quicker: it sees the job's
heartbeat stop and queues it again. Either way the claim in the database decides who runs it, and
the next attempt resumes from the job's checkpoints.

Processes and CUDA: the prefork pool with `worker_max_tasks_per_child=1`. The main process only
talks to the broker; it imports torch (SRNET_WORKER_PRELOAD, so children start fast) but never
touches CUDA. Each job runs in a freshly forked child that exits when the job ends, so every job
starts with a clean CUDA context and gives all GPU memory back. One worker process per GPU:
`srnet worker --gpus ...` (worker.supervisor) starts them pinned; a worker without it refuses
more than one job at a time on the gpu queue of a GPU host (they would all land on the first
GPU). The solo pool would run jobs in the main process, where CUDA state and leaked memory
would outlive the job; a crash would take the consumer down.

"Never touches CUDA" is enforced, not hoped for. Not only a CUDA context poisons fork: the
plain `torch.cuda.is_available()` and `device_count()` call cudaGetDeviceCount, which starts the
CUDA driver in the process, and a forked child then cannot use the GPU. The main process
therefore sets PYTORCH_NVML_BASED_CUDA_CHECK=1 before importing torch (those two calls then ask
NVML, which forks safely; the job processes inherit it, harmless there), and imports its
modules with CUDA's two driver entry points (`torch._C._cuda_getDeviceCount`, `_cuda_init`)
replaced by tripwires: a module that probes CUDA at import stops the worker from starting, with
the culprit named (`tests/worker/test_cuda_in_main_process.py`). Celery logs and ignores
exceptions raised in signal handlers, so the refusals below leave with SystemExit.

Shutdown: a warm shutdown (SIGTERM, Ctrl-C) asks the running job to stop at its next training step:
it checkpoints, goes back to `queued` and is sent again; the next worker resumes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any

from celery import Celery, signals
from kombu import Exchange, Queue

from persistence.broker import celery_config, ensure_broker_folder
from persistence.settings import QUEUES, Settings, WorkerSettings
from worker.gpus import GpuAssignmentError, check_unpinned_concurrency, probe_gpus

# The signal the main process sends its pool children at shutdown.
STOP_SIGNAL = signal.SIGUSR2
# Set in a pool child when the worker shuts down: the running job stops between two steps.
shutdown_requested = threading.Event()


def make_celery_app(
    settings: Settings | None = None, worker_settings: WorkerSettings | None = None
) -> Celery:
    settings = settings or Settings()
    worker_settings = worker_settings or WorkerSettings()
    app = Celery("srnet", broker=settings.broker_url, include=["worker.tasks"])
    app.conf.update(
        celery_config(settings),
        # The API sends by queue name: each queue has its own direct exchange of that name,
        # as Celery creates for a queue it does not know (the API's client declares none).
        task_queues=[Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES],
        task_create_missing_queues=False,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        worker_concurrency=worker_settings.concurrency,
        worker_pool="prefork",
        broker_connection_retry_on_startup=True,
        # Jobs report to the database, not through Celery events.
        worker_send_task_events=False,
        task_send_sent_event=False,
        # The database's heartbeat decides whether a job is alive; a lost broker connection
        # must not cancel an hour of training.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # kombu's SQLAlchemy transport has no fanout exchange for remote control.
        worker_enable_remote_control=settings.broker_is_redis,
    )
    app.conf.srnet_settings = settings
    app.conf.srnet_worker_settings = worker_settings
    return app


def worker_argv(
    worker_settings: WorkerSettings, *, loglevel: str = "INFO", hostname: str = "srnet@%h"
) -> list[str]:
    """Arguments of `celery -A worker.celery_app ...` for one worker process."""
    return [
        "-A", "worker.celery_app", "worker",
        "--queues", ",".join(worker_settings.queues),
        "--concurrency", str(worker_settings.concurrency),
        "--pool", "prefork",
        "--max-tasks-per-child", "1",
        "--prefetch-multiplier", "1",
        "--hostname", hostname,
        "--loglevel", loglevel,
        # Jobs are routed by queue and tracked in the database: no worker-to-worker chatter.
        "--without-mingle", "--without-gossip",
    ]  # fmt: skip


# --- CUDA stays out of the main process ----------------------------------------------------------

# What the main process imports before the pool forks (torch, transformers, the pipeline).
PRELOAD_MODULES: tuple[str, ...] = ("srcore.pipeline",)
# torch's entry points into the CUDA driver: each one starts it in the calling process.
CUDA_DRIVER_ENTRY_POINTS = ("_cuda_getDeviceCount", "_cuda_init")


class CudaInMainProcessError(RuntimeError):
    """Something started CUDA in the worker's main process: its forked jobs could not use it."""


def import_without_cuda(modules: tuple[str, ...]) -> None:
    """Import `modules` with torch's CUDA driver entry points replaced by tripwires; raises
    CudaInMainProcessError when any was called (also when the caller swallowed the tripwire's
    error) or a CUDA context exists afterwards."""
    import importlib
    import traceback

    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # torch reads it at every such call
    import torch

    calls: list[str] = []

    def tripwire(name: str) -> Any:
        def refuse(*_: Any, **__: Any) -> Any:
            where = "".join(traceback.format_stack(limit=12)[:-1])
            calls.append(f"torch._C.{name}() called from:\n{where}")
            raise CudaInMainProcessError(f"torch._C.{name}() in the worker's main process")

        return refuse

    originals = {n: getattr(torch._C, n) for n in CUDA_DRIVER_ENTRY_POINTS if hasattr(torch._C, n)}
    for name in originals:
        setattr(torch._C, name, tripwire(name))
    try:
        for module in modules:
            importlib.import_module(module)
    except CudaInMainProcessError:
        pass  # reported below, with the stack
    finally:
        for name, original in originals.items():
            setattr(torch._C, name, original)
    if calls:
        raise CudaInMainProcessError(
            "importing the worker's modules started CUDA in its main process (the forked job "
            "processes could not use the GPU): " + calls[0]
        )
    if torch.cuda.is_initialized():
        raise CudaInMainProcessError("CUDA was initialised in the worker's main process")


# --- worker process lifecycle --------------------------------------------------------------------


def _consumed_queues(sender: Any) -> list[str]:
    queues = sender.app.amqp.queues
    return sorted(queues.consume_from or queues)


@signals.worker_init.connect
def _preload(sender: Any = None, **_: Any) -> None:
    """Main process, before the pool forks: refuse jobs sharing a GPU, then import the heavy
    modules once (never CUDA)."""
    ensure_broker_folder(sender.app.conf.srnet_settings.broker_url)
    worker_settings: WorkerSettings = sender.app.conf.srnet_worker_settings
    concurrency = sender.concurrency if isinstance(sender.concurrency, int) else 1
    queues = _consumed_queues(sender)
    try:
        if concurrency > 1 and "gpu" in queues:  # probing costs an nvidia-smi call
            check_unpinned_concurrency(probe_gpus(), queues, concurrency)
        if worker_settings.preload:
            import_without_cuda(PRELOAD_MODULES)
    except (GpuAssignmentError, CudaInMainProcessError) as exc:
        raise SystemExit(f"srnet worker: {exc}") from exc


@signals.worker_process_init.connect
def _install_stop_handler(**_: Any) -> None:
    """Pool child: the main process signals STOP_SIGNAL when the worker shuts down."""
    shutdown_requested.clear()
    signal.signal(STOP_SIGNAL, lambda *_: shutdown_requested.set())


@signals.worker_shutting_down.connect
def _stop_running_jobs(**_: Any) -> None:
    """Main process, warm or cold shutdown: ask each pool child that runs a job to stop it.
    Idle children are left to the pool (billiard ends them; a signal would kill them early)."""
    from celery.worker import state

    busy = {r.worker_pid for r in list(state.active_requests) if r.worker_pid}
    for pid in busy:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, STOP_SIGNAL)


app = make_celery_app()
