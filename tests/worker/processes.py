"""Real service processes for integration and end-to-end tests: a Celery worker exactly as
`srnet worker` runs it, in its own process group so a test can SIGKILL the whole worker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from persistence.settings import Settings, WorkerSettings
from worker.celery_app import worker_argv

T = TypeVar("T")

# Fast heartbeats so faults show up in seconds; what a test changes is in the env it passes.
TEST_WORKER_ENV = {
    "SRNET_HEARTBEAT_INTERVAL_S": "0.2",
    "SRNET_PROGRESS_INTERVAL_S": "0.2",
    "SRNET_ENVIRONMENT": "test",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def service_env(settings: Settings, work_dir: Path, **extra: str) -> dict[str, str]:
    """The environment a service process needs to share `settings` with the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRNET_", "WORKER_"))}
    env.update(TEST_WORKER_ENV)
    env.update({
        "SRNET_DATABASE_URL": settings.database_url,
        "SRNET_BROKER_URL": settings.broker_url,
        "SRNET_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "SRNET_ARTIFACT_STORE": settings.artifact_store,
        "SRNET_HEARTBEAT_STALE_S": str(settings.heartbeat_stale_s),
        "SRNET_JOB_MAX_ATTEMPTS": str(settings.job_max_attempts),
        "SRNET_DATA_ROOTS": json.dumps(settings.data_roots),
        "SRNET_WORK_DIR": str(work_dir),
    })  # fmt: skip
    env.update(extra)
    return env


def one_core() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Pin a test's service process to one core. srcore trains on every core the process may
    use; on a small shared machine two threads on a tiny model wait on each other ~15x longer
    than one thread computes (measured: 300 steps in 6 s on one core, 88 s on two)."""
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class CeleryWorkerProcess:
    def __init__(self, env: Mapping[str, str], log_path: Path, name: str = "worker"):
        self.env = dict(env)
        self.log_path = log_path
        self.name = name
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> CeleryWorkerProcess:
        argv = worker_argv(WorkerSettings(_env_file=None, **{"SRNET_WORKER_QUEUES": "gpu,cpu"}),
                           hostname=f"{self.name}@%h")  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", *argv],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=one_core,
            )  # fmt: skip
        wait_for(lambda: " ready." in self.log() or not self.alive(), timeout, f"{self.name}")
        assert self.alive(), f"{self.name} exited:\n{self.log()[-3000:]}"
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the main process and its pool child at once, as a dead machine would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM to the main process only (what `docker stop`, systemd or serve send)."""
        assert self.process is not None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def __enter__(self) -> CeleryWorkerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.alive():
            self.terminate(timeout=20)
