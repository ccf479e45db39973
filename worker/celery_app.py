"""The workers' Celery app: `celery -A worker.celery_app worker` (or `srnet worker`).

Configured from `persistence.settings.Settings` (BROKER_URL and the broker transport options the
API uses too) and `worker.config.WorkerSettings`.

Delivery: `task_acks_late` + `task_reject_on_worker_lost` + prefetch 1. A message is acknowledged
only when its task returns, so a worker that dies mid-job leaves it unacknowledged and the broker
delivers it again (Redis: after the visibility timeout, BROKER_VISIBILITY_TIMEOUT_S, 7 days by
default, longer than any job). In practice the reconciler is quicker: it sees the job's heartbeat
stop and queues it again. Either way the claim in the database decides who runs it, and the next
attempt resumes from the job's checkpoints.

Processes and CUDA: the prefork pool with `worker_max_tasks_per_child=1`. The main process only
talks to the broker; it imports torch (WORKER_PRELOAD, so children start fast) but never touches
CUDA. Each job runs in a freshly forked child that exits when the job ends, so every job starts
with a clean CUDA context and gives all GPU memory back. Run one worker (concurrency 1) per GPU,
choosing the GPU with CUDA_VISIBLE_DEVICES. The solo pool would run jobs in the main process,
where CUDA state and leaked memory would outlive the job; a crash would take the consumer down.

Shutdown: a warm shutdown (SIGTERM, Ctrl-C) asks the running job to stop at its next training
step: it checkpoints, goes back to `queued` and is sent again; the next worker resumes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import uuid
from typing import Any, Protocol

from celery import Celery, signals
from kombu import Exchange, Queue

from persistence.db import ensure_sqlite_folder
from persistence.settings import Settings
from worker.config import QUEUES, WorkerSettings

log = logging.getLogger(__name__)

RUN_JOB_TASK = "srnet.run_job"  # the name the API sends (api.enqueue.RUN_JOB_TASK)
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
        task_serializer="json",
        accept_content=["json"],
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=settings.default_queue,
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
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_timeout=settings.broker_connect_timeout_s,
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


def ensure_broker_folder(settings: Settings) -> None:
    """The embedded broker is a SQLite file: its folder must exist before the first connect."""
    if settings.broker_url.startswith("sqla+sqlite"):
        ensure_sqlite_folder(settings.broker_url.removeprefix("sqla+"))


class JobSender(Protocol):
    def send(self, job_id: uuid.UUID, queue: str) -> None:
        """Hand the job to the broker; raises if the broker did not take it."""
        ...

    def waiting(self, queue: str) -> int | None:
        """Messages waiting in `queue`; None when the broker cannot say."""
        ...


class CeleryJobSender:
    """Sends jobs by task name, as the API does (enqueue after commit)."""

    def __init__(self, app: Celery):
        self.app = app
        settings = getattr(app.conf, "srnet_settings", None)
        if settings is not None:
            ensure_broker_folder(settings)

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        self.app.send_task(RUN_JOB_TASK, args=[str(job_id)], queue=queue)

    def waiting(self, queue: str) -> int | None:
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                # kombu's virtual transports (Redis, SQLAlchemy) count pending messages with
                # `_size`; a passive declare fails on them for an empty or prefixed queue.
                size = getattr(channel, "_size", None)
                if callable(size):
                    return int(size(queue))
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
                return int(count)
        except Exception as exc:  # any broker trouble: we cannot say
            log.warning("cannot count the messages in queue %s: %s", queue, exc)
            return None


# --- worker process lifecycle --------------------------------------------------------------------


@signals.worker_init.connect
def _preload(sender: Any = None, **_: Any) -> None:
    """Main process, before the pool forks: import the heavy modules once (never CUDA)."""
    ensure_broker_folder(sender.app.conf.srnet_settings)
    worker_settings: WorkerSettings = sender.app.conf.srnet_worker_settings
    if not worker_settings.preload:
        return
    import torch

    import srcore.pipeline  # noqa: F401 - torch, transformers, the pipeline

    if torch.cuda.is_initialized():  # pragma: no cover - a bug in an import
        raise RuntimeError("CUDA was initialised in the worker's main process")


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
