"""API fixtures: an app per test on a migrated database (SQLite and PostgreSQL), a recording
enqueuer that checks the job row is committed when it is called, a local artifact store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from persistence.artifacts import LocalArtifactStore
from persistence.db import Database
from persistence.settings import Settings
from persistence.tables import Job
from tests.persistence.fixtures import *  # noqa: F403
from tests.persistence.fixtures import make_owner


class RecordingEnqueuer:
    """Stands in for the broker. At each call it reads the job through its OWN connection:
    the row must already be committed (enqueue after commit)."""

    def __init__(self, database_url: str):
        self.database = Database(database_url)
        self.sent: list[tuple[uuid.UUID, str]] = []
        self.seen_committed: list[bool] = []
        self.fail = False

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        with self.database.session() as session:
            job = session.get(Job, job_id)
            self.seen_committed.append(job is not None and job.status == "queued")
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((job_id, queue))

    def ping(self) -> None:
        if self.fail:
            raise ConnectionError("broker down")

    def close(self) -> None:
        self.database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url="redis://127.0.0.1:1/0",  # never used: the enqueuer is replaced
        artifact_store=f"file://{tmp_path / 'artifacts'}",
        sse_poll_interval_s=0.05,
        # No worker claims here: let every submitted job go to the (recording) broker at once.
        # The dispatcher's turns and limits have their own tests (tests/persistence/test_dispatch).
        dispatch_ahead=1000,
    )


@pytest.fixture
def enqueuer(database_url: str) -> RecordingEnqueuer:
    return RecordingEnqueuer(database_url)


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


@pytest.fixture
def client(settings, enqueuer, store) -> Iterator[TestClient]:
    app = create_app(settings, enqueuer=enqueuer, artifact_store=store)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def app_database(client: TestClient) -> Database:
    return client.app.state.database


@pytest.fixture
def owner(app_database) -> tuple[uuid.UUID, str]:
    return make_owner(app_database, "lab-alice")


@pytest.fixture
def auth(owner) -> dict[str, str]:
    return {"Authorization": f"Bearer {owner[1]}"}


@pytest.fixture
def other_auth(app_database) -> dict[str, str]:
    return {"X-API-Key": make_owner(app_database, "lab-bob")[1]}
