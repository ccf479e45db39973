"""Enqueue after commit against the real PostgreSQL and Redis: a message lands on the right
queue only once the job row is committed, never for an invalid spec or a failed commit."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from api.main import create_app
from persistence.broker import RUN_JOB_TASK, CeleryJobSender, make_celery_client
from persistence.db import Database
from persistence.repositories import JobRepository
from persistence.tables import Job
from tests.persistence.fixtures import make_owner

SPEC = {"task": "mnli", "training": {"max_steps": 3}}


def committed_row_exists(database_url: str, job_id: uuid.UUID) -> bool:
    """Read through a separate plain connection: only committed rows are visible."""
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as connection:
        row = connection.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    return row is not None and row[0] == "queued"


class CheckingEnqueuer(CeleryJobSender):
    """The real Celery sender, noting what the database and the queue showed at send time."""

    def __init__(self, settings, broker):
        super().__init__(make_celery_client(settings))
        self.settings = settings
        self.broker = broker
        self.observed: list[tuple[bool, int]] = []

    def send(self, job_id, queue):
        self.observed.append(
            (committed_row_exists(self.settings.database_url, job_id), self.broker.llen(queue))
        )
        super().send(job_id, queue)


@pytest.fixture
def setup(service_settings, redis_broker):
    enqueuer = CheckingEnqueuer(service_settings, redis_broker)
    app = create_app(service_settings, enqueuer=enqueuer)
    with TestClient(app, raise_server_exceptions=False) as client:
        _, key = make_owner(app.state.database)
        yield client, {"Authorization": f"Bearer {key}"}, enqueuer


def decode(message: bytes) -> tuple[str, list]:
    envelope = json.loads(message)
    args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
    return envelope["headers"]["task"], args


def test_job_lands_on_the_gpu_queue_after_commit(setup, redis_broker):
    client, auth, enqueuer = setup
    response = client.post("/jobs", json=SPEC, headers=auth)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    # When the message was sent the row was committed and the queue still empty.
    assert enqueuer.observed == [(True, 0)]
    assert redis_broker.llen("gpu") == 1 and redis_broker.llen("cpu") == 0
    assert decode(redis_broker.messages("gpu")[0]) == (RUN_JOB_TASK, [job_id])


def test_cpu_queue_is_honoured(setup, redis_broker):
    client, auth, _ = setup
    job_id = client.post("/jobs", json={**SPEC, "queue": "cpu"}, headers=auth).json()["id"]
    assert redis_broker.llen("cpu") == 1 and redis_broker.llen("gpu") == 0
    assert decode(redis_broker.messages("cpu")[0])[1] == [job_id]


@pytest.mark.parametrize(
    "body", [{"pruning": {"sparsities": [2.0]}}, {"task": "fever"}, {"training": {"x": 1}}]
)
def test_invalid_spec_queues_nothing(setup, redis_broker, body):
    client, auth, enqueuer = setup
    response = client.post("/jobs", json=body, headers=auth)
    assert response.status_code == 422
    assert redis_broker.llen("gpu") == 0 and enqueuer.observed == []


def test_failed_commit_queues_nothing(setup, redis_broker, monkeypatch, service_settings):
    client, auth, enqueuer = setup
    real_commit = Session.commit

    def failing_commit(session):
        if any(isinstance(obj, Job) for obj in session.identity_map.values()):
            raise OperationalError("COMMIT", {}, Exception("connection lost at commit"))
        return real_commit(session)

    monkeypatch.setattr(Session, "commit", failing_commit)
    response = client.post("/jobs", json=SPEC, headers=auth)
    monkeypatch.undo()
    # a lost database connection is a JSON 503 with Retry-After (issue 11), never a queued job
    assert response.status_code == 503
    assert response.json()["type"] == "database_unavailable"
    assert response.headers["retry-after"]
    assert redis_broker.llen("gpu") == 0 and enqueuer.observed == []
    database = Database(service_settings.database_url)
    try:
        with database.session() as session:
            assert session.query(Job).count() == 0
    finally:
        database.dispose()


def test_a_worker_configured_from_the_same_settings_receives_it(setup, service_settings):
    client, auth, _ = setup
    job_id = client.post("/jobs", json=SPEC, headers=auth).json()["id"]
    worker_side = make_celery_client(service_settings, name="srnet-worker-test")
    with worker_side.connection_for_read() as connection:
        queue = connection.SimpleQueue("gpu")
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert message.headers["task"] == RUN_JOB_TASK
    assert message.payload[0] == [job_id]


def test_lost_broker_message_is_found_again_from_the_database(
    setup, redis_broker, service_settings
):
    """Redis restarted with nothing on disk: the database still says `queued`, and the
    reconciler's query finds the job to send again."""
    client, auth, _ = setup
    job_id = uuid.UUID(client.post("/jobs", json=SPEC, headers=auth).json()["id"])
    redis_broker.client.delete(redis_broker.prefix + "gpu")  # the broker forgets
    assert redis_broker.llen("gpu") == 0
    database = Database(service_settings.database_url)
    try:
        with database.session() as session:
            repo = JobRepository(session)
            lost = repo.find_queued_for_enqueue(not_sent_for=timedelta(0))
            assert [job.id for job in lost] == [job_id]
            enqueuer = CeleryJobSender.from_settings(service_settings)
            for job in lost:
                enqueuer.send(job.id, job.queue)
                repo.mark_enqueued(job.id)
            session.commit()
            enqueuer.close()
    finally:
        database.dispose()
    assert decode(redis_broker.messages("gpu")[0])[1] == [str(job_id)]


def test_dead_broker_at_submit_keeps_the_job(service_settings, redis_broker):
    dead = service_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    app = create_app(dead)
    with TestClient(app) as client:
        _, key = make_owner(app.state.database)
        response = client.post("/jobs", json=SPEC, headers={"X-API-Key": key})
        assert response.status_code == 201
        health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["detail"] == "broker down"
    with app.state.database.session() as session:
        job = session.get(Job, uuid.UUID(response.json()["id"]))
        assert job.status == "queued" and job.enqueued_at is None


def test_healthz_ok_with_postgres_and_redis(setup):
    client, _, _ = setup
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"broker": "ok", "database": "ok"}
