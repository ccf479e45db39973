"""`srnet worker --gpus ...`: one Celery worker process per GPU, started and stopped together.

The supervisor never imports torch. Each child is a plain `srnet worker` (prefork pool, one
fresh process per job) whose environment pins it before anything in it imports torch:
CUDA_VISIBLE_DEVICES=<the GPU's UUID or id> for a gpu-queue child, CUDA_VISIBLE_DEVICES=""
for the cpu-queue child. SRNET_WORKER_GPUS is removed from the children's environment, so a
child never supervises in turn.

Stopping: SIGTERM or SIGINT is passed on once to every child as SIGTERM (Celery's warm
shutdown: a running job checkpoints at its next step and goes back to the queue); a second one
kills them. When a child fails (exits non-zero or is killed) the supervisor stops the others the
same way and exits non-zero, so the host's process manager (systemd, a container's restart
policy) restarts the set as a whole with a known layout. A child that ends normally (exit 0:
a Slurm worker's idle exit) leaves the others running; the supervisor ends with the last.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from persistence.settings import Settings, WorkerSettings
from worker.gpus import WorkerChild

log = logging.getLogger(__name__)

# The children's own variables: each child is a plain worker with these values.
CHILD_ONLY_VARIABLES = ("SRNET_WORKER_GPUS",)


def child_environment(child: WorkerChild, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of one child: the supervisor's, pinned to the child's device."""
    env = {k: v for k, v in environ.items() if k not in CHILD_ONLY_VARIABLES}
    env["CUDA_VISIBLE_DEVICES"] = child.cuda_visible_devices
    env["SRNET_WORKER_QUEUES"] = ",".join(child.queues)
    env["SRNET_WORKER_CONCURRENCY"] = str(child.concurrency)
    return env


def child_argv(child: WorkerChild, *, hostname: str = "%h", loglevel: str = "INFO") -> list[str]:
    """`srnet worker` for one child; `hostname` is the part after the node name's @."""
    return [
        sys.executable, "-m", "srnet", "worker",
        "--queues", ",".join(child.queues),
        "--concurrency", str(child.concurrency),
        "--hostname", f"{child.name}@{hostname}",
        "--loglevel", loglevel,
    ]  # fmt: skip


def declare_queues(settings: Settings, worker_settings: WorkerSettings) -> None:
    """Declare the queues the children consume once, before they start: kombu's SQLAlchemy
    transport (the embedded broker) creates a queue's row on first use, and workers starting
    together race for it (UNIQUE constraint failed: kombu_queue.name, and the loser dies)."""
    from persistence.broker import ensure_broker_folder
    from worker.celery_app import make_celery_app

    ensure_broker_folder(settings.broker_url)
    app = make_celery_app(settings, worker_settings)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in app.conf.task_queues:
            if queue.name in worker_settings.queues:
                queue.bind(channel).declare()


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM (a warm shutdown) if the supervisor dies first."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class RunningChild:
    child: WorkerChild
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signum)

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the child and its pool


class WorkerSupervisor:
    """Starts the planned children, waits, stops them all when one ends or on a signal."""

    def __init__(
        self,
        children: Sequence[WorkerChild],
        *,
        argv_of: Callable[[WorkerChild], list[str]] = child_argv,
        environ: Mapping[str, str] | None = None,
        stop_timeout_s: float = 600.0,
        poll_s: float = 0.5,
    ):
        if not children:
            raise ValueError("no worker process to supervise")
        self.children = list(children)
        self.argv_of = argv_of
        self.environ = dict(os.environ if environ is None else environ)
        self.stop_timeout_s = stop_timeout_s
        self.poll_s = poll_s
        self.running: list[RunningChild] = []
        self.stop_requested = threading.Event()
        self._signals = 0

    def start(self) -> None:
        for child in self.children:
            process = subprocess.Popen(
                self.argv_of(child),
                env=child_environment(child, self.environ),
                # Own process groups: a terminal's Ctrl-C reaches only the supervisor, which
                # stops the children in order.
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
            self.running.append(RunningChild(child, process))
            where = f"GPU {child.gpu.describe()}" if child.gpu else "the CPU"
            print(
                f"srnet worker: started {child.name} (pid {process.pid}, "
                f"CUDA_VISIBLE_DEVICES={child.cuda_visible_devices!r}, queues "
                f"{','.join(child.queues)}) on {where}",
                file=sys.stderr,
                flush=True,
            )

    def request_stop(self, *_: object) -> None:
        """First call: a warm shutdown of every child; a second one: kill them."""
        self._signals += 1
        self.stop_requested.set()
        for running in self.running:
            if self._signals == 1:
                running.signal(signal.SIGTERM)
            else:
                running.kill()

    def run(self) -> int:
        """Until a signal, a child's failure, or every child's normal end (exit 0: e.g. a
        Slurm worker idle long enough). Answers 0 after a requested stop or when every child
        ended normally, else the exit status of the first child that failed."""
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {s: signal.signal(s, self.request_stop) for s in handled}
        try:
            self.start()
            while not self.stop_requested.is_set():
                failed = next((r for r in self.running if r.process.poll()), None)
                if failed is not None:
                    return self._stop_after_failure(failed)
                if not any(r.alive() for r in self.running):
                    return 0
                self.stop_requested.wait(self.poll_s)
            self._wait_all()
            return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _stop_after_failure(self, failed: RunningChild) -> int:
        code = failed.process.returncode
        print(
            f"srnet worker: {failed.child.name} (pid {failed.process.pid}) exited with {code}; "
            "stopping the others",
            file=sys.stderr,
            flush=True,
        )
        self.request_stop()
        self._wait_all()
        return code if code > 0 else 128 - code  # killed by signal N: 128 + N, as a shell says

    def _wait_all(self) -> None:
        deadline = time.monotonic() + self.stop_timeout_s
        for running in self.running:
            try:
                running.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("%s did not stop in time: killed", running.child.name)
                running.kill()
                running.process.wait()
