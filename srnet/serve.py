"""`srnet serve`: the whole service on one machine.

Migrates the database, makes sure an API key exists (prints a new one once), then runs the API
(uvicorn), one Celery worker process and the reconciler (a thread here) until Ctrl-C or SIGTERM,
and stops them all: the worker's running job checkpoints and goes back to the queue, so the next
`srnet serve` resumes it. Defaults need no service at all, every file under SRNET_HOME
(default ~/.local/share/srnet): SQLite (srnet.db), kombu's SQLAlchemy transport on SQLite as the
broker (broker.db), artifacts/ and work/. A key made at first start is written to
SRNET_HOME/api-key, readable by its owner only (0600), never to the log.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key, ensure_bootstrap_key
from persistence.repositories import ApiKeyRepository, OwnerRepository
from persistence.settings import Settings, WorkerSettings

log = logging.getLogger(__name__)


def bootstrap_api_key(settings: Settings, database: Database) -> str | None:
    """SRNET_BOOTSTRAP_API_KEY is stored (hashed) if it is not yet; without it, a new key is
    made for the bootstrap owner when that owner has no active key. Answers a new key to show
    once, else None."""
    owner_name = settings.bootstrap_owner
    with database.session() as session:
        if settings.bootstrap_api_key is not None:
            key = settings.bootstrap_api_key.get_secret_value()
            if ensure_bootstrap_key(session, key, owner_name):
                session.commit()
            return None
        owner = OwnerRepository(session).get_by_name(owner_name)
        if owner is not None and any(
            k.revoked_at is None for k in ApiKeyRepository(session).list_for_owner(owner.id)
        ):
            return None
        created = create_api_key(session, owner_name, name="bootstrap")
        session.commit()
        return created.key


def write_key_file(path: Path, key: str) -> Path:
    """The key in a file only its owner can read (0600), replacing an older one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def key_file(settings: Settings) -> Path:
    return settings.home / "api-key"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the child gets SIGTERM if `srnet serve` dies without stopping it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        # The main process only: the Celery worker then asks its pool child to stop the job
        # between two steps; a SIGTERM to the child itself would kill the job on the spot.
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


class EmbeddedService:
    """The API, a worker and the reconciler, started and stopped together."""

    def __init__(
        self,
        settings: Settings,
        worker_settings: WorkerSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        with_worker: bool = True,
        with_reconciler: bool = True,
        stop_timeout_s: float = 60.0,
        log_level: str = "info",
    ):
        self.settings = settings
        self.worker_settings = worker_settings
        self.host = host
        self.port = port
        self.with_worker = with_worker
        self.with_reconciler = with_reconciler
        self.stop_timeout_s = stop_timeout_s
        self.log_level = log_level
        self.children: list[Child] = []
        self.stop_requested = threading.Event()
        self._reconciler_stop = threading.Event()
        self._reconciler_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _spawn(self, name: str, argv: Sequence[str]) -> None:
        # Own process groups: Ctrl-C reaches only `srnet serve`, which stops the children in
        # order (a second Ctrl-C must not turn the worker's warm shutdown into a kill).
        process = subprocess.Popen(
            list(argv),
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.children.append(Child(name, process))
        log.info("started %s (pid %d)", name, process.pid)

    def worker_command(self) -> list[str]:
        """One Celery worker; with SRNET_WORKER_GPUS set, `srnet worker` (which reads it) and
        its one pinned worker process per GPU instead: several GPU jobs in one Celery worker
        would all run on the first GPU."""
        if self.worker_settings.gpus is not None:
            # The supervisor must stop its children inside our own stop timeout.
            stop = max(1.0, self.stop_timeout_s - 5.0)
            return [sys.executable, "-m", "srnet", "worker", "--hostname", "srnet-embedded@%h",
                    "--loglevel", self.log_level.upper(), "--stop-timeout", str(stop)]  # fmt: skip
        from worker.celery_app import worker_argv

        argv = worker_argv(self.worker_settings, loglevel=self.log_level.upper(),
                           hostname="srnet-embedded@%h")  # fmt: skip
        return [sys.executable, "-m", "celery", *argv]

    def start(self) -> None:
        from persistence.broker import CeleryJobSender, ensure_broker_folder
        from persistence.dispatch import DispatchPolicy
        from worker.reconciler import Reconciler

        ensure_broker_folder(self.settings.broker_url)
        self._spawn("api", [
            sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
            "--host", self.host, "--port", str(self.port), "--log-level", self.log_level,
        ])  # fmt: skip
        if self.with_worker:
            self._spawn("worker", self.worker_command())
        if self.with_reconciler:
            database = Database.from_settings(self.settings)
            sender = CeleryJobSender.from_settings(self.settings, name="srnet-reconciler")
            reconciler = Reconciler(
                database, sender,
                stale_after_s=self.settings.heartbeat_stale_s,
                resend_after_s=self.worker_settings.reconcile_resend_after_s,
                work=self.worker_settings,
                policy=DispatchPolicy.from_settings(self.settings),
            )  # fmt: skip

            def loop() -> None:
                try:
                    reconciler.run_forever(
                        self._reconciler_stop, self.worker_settings.reconcile_interval_s
                    )
                finally:
                    database.dispose()

            self._reconciler_thread = threading.Thread(target=loop, name="reconciler", daemon=True)
            self._reconciler_thread.start()

    def wait_until_ready(self, timeout_s: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stop_requested.is_set():
            if any(not c.alive() for c in self.children):
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2.0).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        return False

    def wait(self) -> int:
        """Until a stop is asked (0) or a child exits on its own (1)."""
        while not self.stop_requested.wait(0.5):
            for child in self.children:
                if not child.alive():
                    log.error("%s exited with status %s; stopping", child.name,
                              child.process.returncode)  # fmt: skip
                    return 1
        return 0

    def stop(self) -> None:
        self._reconciler_stop.set()
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + self.stop_timeout_s
        for child in self.children:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.name,
                            self.stop_timeout_s)  # fmt: skip
                child.kill()
                child.process.wait()
        if self._reconciler_thread is not None:
            self._reconciler_thread.join(timeout=10)


def run_serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    with_worker: bool = True,
    with_reconciler: bool = True,
    stop_timeout_s: float = 60.0,
    log_level: str = "info",
) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for chatty in ("alembic", "httpx"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = Settings()
    worker_settings = WorkerSettings()
    print(f"srnet serve: {settings.locations()}; work {worker_settings.work}", flush=True)
    upgrade_database(settings.database_url)
    database = Database.from_settings(settings)
    try:
        new_key = bootstrap_api_key(settings, database)
    finally:
        database.dispose()
    new_key_file = write_key_file(key_file(settings), new_key) if new_key is not None else None

    service = EmbeddedService(
        settings, worker_settings, host=host, port=port, with_worker=with_worker,
        with_reconciler=with_reconciler, stop_timeout_s=stop_timeout_s, log_level=log_level,
    )  # fmt: skip
    interrupts = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:  # a second Ctrl-C: no more waiting
            for child in service.children:
                child.kill()
        service.stop_requested.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        service.start()
        if not service.wait_until_ready():
            if service.stop_requested.is_set():
                return 0
            print("srnet serve: the API did not come up; see the log above", file=sys.stderr)
            return 1
        _announce(service, settings, new_key_file)
        return service.wait()
    finally:
        service.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print("srnet serve: stopped", flush=True)


def _announce(service: EmbeddedService, settings: Settings, new_key_file: Path | None) -> None:
    lines = [f"SRNet is serving on {service.url}  (docs: {service.url}/docs)",
             f"Using {settings.locations()}"]  # fmt: skip
    if new_key_file is not None:
        lines += [
            f"A new API key for owner '{settings.bootstrap_owner}' is in {new_key_file} "
            "(readable by you only; stored hashed in the database).",
            f"Use it as:  export SRNET_API_KEY=$(cat {new_key_file})",
        ]
    elif settings.bootstrap_api_key is not None:
        lines.append(f"API key: SRNET_BOOTSTRAP_API_KEY (owner '{settings.bootstrap_owner}')")
    else:
        lines.append("API keys exist already; make another with "
                     "`srnet keys create --owner NAME`")  # fmt: skip
    lines.append("Ctrl-C stops the API, the worker and the reconciler.")
    print("\n".join(lines), flush=True)
