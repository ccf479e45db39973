"""Worker fixtures: a migrated SQLite database per test, a local artifact store, a work folder,
a sender that records what would go to the broker, and a tiny model saved once per run."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.settings import Settings, WorkerSettings
from tests.persistence.fixtures import *  # noqa: F403
from tests.worker.tiny_job import save_tiny_model
from worker.tasks import WorkerContext


class RecordingSender:
    """Stands in for the broker: records sends; `waiting` and `pending_jobs` answer what the
    test sets (no listing by default: the reconciler then counts)."""

    def __init__(self) -> None:
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.in_queue: dict[str, int | None] = {}
        self.listed: dict[str, set[uuid.UUID]] = {}
        self.fail = False

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((job_id, queue))

    def waiting(self, queue: str) -> int | None:
        return self.in_queue.get(queue, 0)

    def pending_jobs(self, queue: str) -> set[uuid.UUID] | None:
        return self.listed.get(queue)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "srnet.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder job specs may name local files under (DATA_ROOTS): this run's temp root."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture
def worker_context(
    sqlite_url: str, tmp_path: Path, sender: RecordingSender, data_root: Path
) -> Iterator[WorkerContext]:
    settings = Settings(
        _env_file=None,
        database_url=sqlite_url,
        data_roots=[str(data_root)],
        broker_url="redis://127.0.0.1:1/0",  # never used: the sender is replaced
        artifact_store=f"file://{tmp_path / 'artifacts'}",
    )
    worker_settings = WorkerSettings(
        _env_file=None,
        work_dir=tmp_path / "work",
        heartbeat_interval_s=0.1,
        progress_interval_s=0.0,
    )
    context = WorkerContext.create(settings, worker_settings, sender)
    context.work_dir_lock_wait_s = 1.0
    yield context
    context.close()
