# ruff: noqa: F811  (pytest fixtures imported from the worker-process tests)
"""Fair shares with a real Celery worker on the real PostgreSQL and Redis: two owners, one
worker. Jobs are committed and then dispatched the way the API's submission does it
(persistence.dispatch); the worker claims, runs and dispatches the next job itself."""

from __future__ import annotations

import uuid

import pytest

from persistence.broker import CeleryJobSender
from persistence.db import Database
from persistence.dispatch import DispatchPolicy, dispatch
from persistence.keys import create_api_key
from persistence.repositories import JobRepository
from persistence.settings import Settings
from tests.integration.conftest import pg_url, redis_broker, service_settings  # noqa: F401
from tests.worker.test_worker_processes import (  # noqa: F401
    database,
    env,
    job_of,
    settings,
    wait_status,
    workers,
)
from tests.worker.tiny_job import tiny_job_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def new_owner(database: Database, name: str) -> uuid.UUID:
    with database.session() as session:
        owner = create_api_key(session, name).owner
        session.commit()
        return owner.id


def submit(settings: Settings, database: Database, owner_id: uuid.UUID, spec: dict, n: int):
    """What POST /jobs does n times: commit the job, then a dispatch pass."""
    sender = CeleryJobSender.from_settings(settings)
    ids = []
    try:
        for _ in range(n):
            with database.session() as session:
                job = JobRepository(session).create(
                    owner_id=owner_id, spec=spec, spec_hash=uuid.uuid4().hex
                )
                session.commit()
                ids.append(job.id)
                dispatch(session, sender, DispatchPolicy.from_settings(settings))
    finally:
        sender.close()
    return ids


def test_one_worker_two_owners_b_s_single_job_waits_for_at_most_one_of_a_s(
    settings,
    database,
    workers,
    tiny_model_dir,
    redis_broker,
):
    worker = workers("worker")
    a = new_owner(database, "lab-a")
    b = new_owner(database, "lab-b")
    spec = tiny_job_spec(tiny_model_dir, search_steps=40, eval_every=20)
    a_jobs = submit(settings, database, a, spec, 4)
    # The broker holds one of them at a time, not A's whole backlog.
    assert redis_broker.llen("gpu") <= 1
    wait_status(database, a_jobs[0], {"running"}, 90, worker)
    (b_job,) = submit(settings, database, b, spec, 1)
    for job_id in [*a_jobs, b_job]:
        job = wait_status(database, job_id, {"succeeded", "failed"}, 180, worker)
        assert job.status == "succeeded", job.error
    started = sorted([*a_jobs, b_job], key=lambda j: job_of(database, j).started_at)
    b_at = started.index(b_job)
    # a1 was running when B submitted; at most one more of A's jobs started before B's (the
    # one already handed to the broker). First come, first served would start it last.
    assert b_at <= 2, [str(j)[:8] for j in started]
    assert started[:b_at] == a_jobs[:b_at] and b_at < len(started) - 1
    assert all(job_of(database, j).attempt == 1 for j in started)
