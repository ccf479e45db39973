"""Real Celery worker processes against the real PostgreSQL and Redis (a database per run, Redis
db 13 under a key prefix per test), jobs sent the way the API sends them. Faults: a worker
killed mid-job, a Redis that forgets its queues, a cancel, bad input, a worker shut down.
Skips, saying why, where PostgreSQL or Redis does not answer."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.broker import CeleryJobSender
from persistence.db import Database
from persistence.repositories import ArtifactRepository, JobRepository, MetricRepository
from persistence.settings import Settings, WorkerSettings
from persistence.tables import EventKind, JobStatus
from tests.integration.conftest import pg_url, redis_broker, service_settings  # noqa: F401
from tests.worker.processes import CeleryWorkerProcess, service_env, wait_for
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.celery_app import make_celery_app
from worker.reconciler import Reconciler

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STALE_S = 3.0  # a killed worker's job is recovered after this many seconds of silence


@pytest.fixture
def settings(service_settings: Settings, data_root: Path) -> Settings:  # noqa: F811
    return service_settings.model_copy(
        update={"heartbeat_stale_s": STALE_S, "data_roots": [str(data_root)]}
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    db = Database.from_settings(settings)
    yield db
    db.dispose()


@pytest.fixture
def env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    return service_env(settings, tmp_path / "work")


@pytest.fixture
def workers(env, tmp_path) -> Iterator[list[CeleryWorkerProcess]]:
    """Started workers, all stopped at the end (their logs shown on failure)."""
    started: list[CeleryWorkerProcess] = []

    def start(name: str) -> CeleryWorkerProcess:
        worker = CeleryWorkerProcess(env, tmp_path / f"{name}.log", name).start()
        started.append(worker)
        return worker

    yield start  # type: ignore[misc]
    for worker in started:
        worker.kill()


def submit(settings: Settings, database: Database, spec: dict, queue: str = "gpu") -> uuid.UUID:
    """Store, commit, then send with the API's own enqueuer (enqueue after commit)."""
    job_id = create_job(database, spec, queue=queue)
    enqueuer = CeleryJobSender.from_settings(settings)
    try:
        enqueuer.send(job_id, queue)
    finally:
        enqueuer.close()
    with database.session() as session:
        JobRepository(session).mark_enqueued(job_id)
        session.commit()
    return job_id


def job_of(database: Database, job_id: uuid.UUID):
    with database.session() as session:
        return JobRepository(session).get(job_id)


def events_of(database: Database, job_id: uuid.UUID):
    with database.session() as session:
        return JobRepository(session).events.list(job_id)


def search_checkpoints(database: Database, job_id: uuid.UUID) -> list[int]:
    return [e.data["step"] for e in events_of(database, job_id)
            if e.kind == EventKind.checkpoint and e.data["stage"] == "search"]  # fmt: skip


def wait_status(database, job_id, statuses, timeout: float, worker=None):
    def reached():
        job = job_of(database, job_id)
        return job if job.status in statuses else None

    try:
        return wait_for(reached, timeout, f"job {job_id} to become {'/'.join(statuses)}",
                        interval=0.1)  # fmt: skip
    except AssertionError as exc:
        log = worker.log()[-4000:] if worker is not None else ""
        raise AssertionError(f"{exc}; job is {job_of(database, job_id).status}\n{log}") from None


@pytest.fixture
def reconciler_thread(settings, database) -> Iterator[Reconciler]:
    reconciler = Reconciler(
        database,
        CeleryJobSender(make_celery_app(settings, WorkerSettings(_env_file=None))),
        stale_after_s=STALE_S,
        resend_after_s=1.0,
    )
    stop = threading.Event()
    thread = threading.Thread(target=reconciler.run_forever, args=(stop, 0.3), daemon=True)
    thread.start()
    yield reconciler
    stop.set()
    thread.join(timeout=10)


def test_a_killed_worker_s_job_resumes_on_a_new_worker_from_its_checkpoint(
    settings, database, workers, tiny_model_dir, reconciler_thread
):
    spec = tiny_job_spec(tiny_model_dir, search_steps=300, eval_every=20)
    first = workers("worker1")
    job_id = submit(settings, database, spec)
    wait_for(lambda: search_checkpoints(database, job_id), 90, "a search checkpoint")
    first.kill()  # kill -9 of the worker and its job process, mid-search

    job = job_of(database, job_id)
    assert job.status == JobStatus.running and job.attempt == 1
    killed_at = max(search_checkpoints(database, job_id))
    assert killed_at < 300, "the job finished before it could be killed"

    second = workers("worker2")
    job = wait_status(database, job_id, {"succeeded", "failed"}, 120, second)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempt == 2

    events = events_of(database, job_id)
    messages = [e.message or "" for e in events]
    assert any("stopped answering; will retry" in m for m in messages)  # the reconciler
    (resume,) = [e for e in events if "resuming from the work folder" in (e.message or "")]
    assert {"path": "seed-1/mask-0.50", "step": killed_at} in resume.data["resume"]["checkpoints"]
    # Attempt 2 reused attempt 1's dense fine-tune and continued the search after killed_at.
    second_claim = max(e.id for e in events if e.kind == EventKind.status
                       and e.status == "running")  # fmt: skip
    later = [e for e in events if e.id > second_claim]
    assert any(e.kind == EventKind.stage and "reused cached fine-tune" in (e.message or "")
               for e in later)  # fmt: skip
    assert min(e.data["step"] for e in later if e.kind == EventKind.checkpoint
               and e.data["stage"] == "search") > killed_at  # fmt: skip

    with database.session() as session:
        search = [m.step for m in MetricRepository(session).list(job_id) if m.stage == "search"]
        assert search == list(range(20, 301, 20))  # every evaluation once
        assert len(ArtifactRepository(session).list(job_id)) == 4


def test_jobs_redis_forgot_are_sent_again_and_run(
    settings,
    database,
    workers,
    tiny_model_dir,
    redis_broker,  # noqa: F811
):
    spec = tiny_job_spec(tiny_model_dir)
    jobs = [submit(settings, database, spec, "gpu"), submit(settings, database, spec, "cpu")]
    assert redis_broker.llen("gpu") == 1 and redis_broker.llen("cpu") == 1
    # Redis restarts and keeps nothing (it runs without persistence).
    keys = list(redis_broker.client.scan_iter(match=redis_broker.prefix + "*"))
    redis_broker.client.delete(*keys)
    assert redis_broker.llen("gpu") == 0 and all(
        job_of(database, j).status == "queued" for j in jobs
    )

    worker = workers("worker")
    reconciler = Reconciler(
        database,
        CeleryJobSender(make_celery_app(settings, WorkerSettings(_env_file=None))),
        stale_after_s=STALE_S,
        resend_after_s=0.0,
    )
    report = reconciler.run_once()
    assert sorted(report.resent) == sorted(jobs)
    for job_id in jobs:
        job = wait_status(database, job_id, {"succeeded", "failed"}, 90, worker)
        assert job.status == JobStatus.succeeded and job.attempt == 1, job.error
    assert [j.queue for j in map(lambda j: job_of(database, j), jobs)] == ["gpu", "cpu"]
    # Nothing left to send: the queues are empty and no job is queued.
    assert not reconciler.run_once()


def test_cancel_stops_a_running_job_and_stores_nothing(
    settings, database, workers, tiny_model_dir, tmp_path
):
    worker = workers("worker")
    job_id = submit(settings, database,
                    tiny_job_spec(tiny_model_dir, search_steps=600, eval_every=20))  # fmt: skip
    wait_for(lambda: search_checkpoints(database, job_id), 90, "a search checkpoint")
    with database.session() as session:
        requested = JobRepository(session).request_cancel(job_id)
        session.commit()
    assert requested.status == "cancelling"
    asked_at = max(search_checkpoints(database, job_id))

    job = wait_status(database, job_id, {"cancelled", "succeeded", "failed"}, 60, worker)
    assert job.status == JobStatus.cancelled
    stopped_at = max(search_checkpoints(database, job_id))
    assert stopped_at < 600 and stopped_at - asked_at <= 100, (asked_at, stopped_at)
    with database.session() as session:
        assert ArtifactRepository(session).list(job_id) == []
    artifacts = Path(settings.artifact_store.removeprefix("file://"))
    assert not artifacts.exists() or not [p for p in artifacts.rglob("*") if p.is_file()]
    job_dir = tmp_path / "work" / "jobs" / str(job_id)
    wait_for(lambda: not job_dir.exists(), 10, "the work folder to be removed")


def test_bad_input_fails_once_with_the_message(
    settings,
    database,
    workers,
    tiny_model_dir,
    redis_broker,  # noqa: F811
    tmp_path,
):
    worker = workers("worker")
    missing = str(tmp_path / "missing" / "mnli_train.json")
    job_id = submit(settings, database, tiny_job_spec(tiny_model_dir, train_path=missing))
    job = wait_status(database, job_id, {"failed", "succeeded"}, 60, worker)
    assert job.status == JobStatus.failed and job.attempt == 1
    assert missing in job.error
    assert redis_broker.llen("gpu") == 0  # not sent again
    assert [e.status for e in events_of(database, job_id) if e.kind == EventKind.status] == [
        "running", "failed"]  # fmt: skip


def test_a_worker_shut_down_mid_job_gives_it_back_and_another_resumes_it(
    settings,
    database,
    workers,
    tiny_model_dir,
    redis_broker,  # noqa: F811
):
    first = workers("worker1")
    job_id = submit(settings, database,
                    tiny_job_spec(tiny_model_dir, search_steps=300, eval_every=20))  # fmt: skip
    wait_for(lambda: search_checkpoints(database, job_id), 90, "a search checkpoint")
    assert first.terminate(timeout=60) == 0  # warm shutdown: SIGTERM to the main process

    job = job_of(database, job_id)
    # a shutdown is not the job's fault: the attempt is refunded
    assert job.status == JobStatus.queued and job.attempt == 0, job.status
    stopped_at = max(search_checkpoints(database, job_id))
    assert stopped_at < 300
    assert "shutting down" in events_of(database, job_id)[-1].message
    assert redis_broker.llen("gpu") == 1  # sent again by the worker itself

    second = workers("worker2")
    job = wait_status(database, job_id, {"succeeded", "failed"}, 90, second)
    assert job.status == JobStatus.succeeded and job.attempt == 1, job.error
    events = events_of(database, job_id)
    (resume,) = [e for e in events if "resuming from the work folder" in (e.message or "")]
    assert {"path": "seed-1/mask-0.50", "step": stopped_at} in resume.data["resume"]["checkpoints"]
