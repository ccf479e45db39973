"""The reconciler against the real Redis broker and PostgreSQL (issue 19 item 12): a backlog
older than the resend delay, one message fetched by a worker and unacknowledged, one lost.
Only the lost job is sent again; counting the queue's list made it send every overdue job."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from persistence.broker import CeleryJobSender, job_id_of_message, make_celery_client
from persistence.db import Database
from persistence.repositories import JobRepository
from persistence.tables import utcnow
from tests.persistence.fixtures import make_owner
from worker.reconciler import Reconciler

RESEND_S = 60.0


@pytest.fixture
def backlog(service_settings, pg_url):
    """Six queued jobs of one owner, each sent once to Redis's `gpu` queue."""
    database = Database(pg_url)
    sender = CeleryJobSender.from_settings(service_settings)
    owner_id, _ = make_owner(database)
    jobs: list[uuid.UUID] = []
    for _ in range(6):
        with database.session() as session:
            repo = JobRepository(session)
            job = repo.create(owner_id=owner_id, spec={}, spec_hash="h", queue="gpu")
            session.commit()
            sender.send(job.id, "gpu")
            repo.mark_enqueued(job.id)
            session.commit()
            jobs.append(job.id)
    yield database, sender, jobs
    sender.close()
    database.dispose()


def listed_jobs(redis_broker) -> list[uuid.UUID]:
    return [job_id_of_message(raw) for raw in redis_broker.messages("gpu")]


def test_only_the_lost_job_of_a_backlog_is_sent_again(backlog, redis_broker, service_settings):
    database, sender, jobs = backlog
    worker = make_celery_client(service_settings, name="srnet-worker-test")
    with worker.connection_for_read() as connection:
        consumer = connection.SimpleQueue("gpu")
        fetched = consumer.get(timeout=5)  # a worker holds it, unacknowledged
        fetched_job = uuid.UUID(fetched.payload[0][0])
        assert fetched_job == jobs[0] and redis_broker.llen("gpu") == 5
        # The broker loses one message (a Redis failover, a flush of one key).
        lost_job = jobs[3]
        raw = next(m for m in redis_broker.messages("gpu") if job_id_of_message(m) == lost_job)
        assert redis_broker.client.lrem(redis_broker.prefix + "gpu", 1, raw) == 1

        assert sender.pending_jobs("gpu") == set(jobs) - {lost_job}
        later = utcnow() + timedelta(minutes=10)  # every job waited past the resend delay
        reconciler = Reconciler(database, sender, stale_after_s=300, resend_after_s=RESEND_S,
                                clock=lambda: later)  # fmt: skip
        report = reconciler.run_once()
        assert report.resent == [lost_job]
        assert redis_broker.llen("gpu") == 5
        assert sorted(listed_jobs(redis_broker)) == sorted(set(jobs) - {fetched_job})
        # A second pass ten minutes on: every job has its message; nothing is sent.
        even_later = later + timedelta(minutes=10)
        reconciler.clock = lambda: even_later
        assert reconciler.run_once().resent == []
        fetched.ack()
        consumer.close()
    worker.close()


def test_a_flushed_redis_gets_every_queued_job_back_oldest_send_first(backlog, redis_broker):
    database, sender, jobs = backlog
    # Redis restarted with nothing on disk: every key of this test's broker is gone (not a
    # FLUSHDB: other tests share the database under their own prefixes).
    redis_broker.client.delete(*redis_broker.client.scan_iter(match=redis_broker.prefix + "*"))
    assert sender.pending_jobs("gpu") == set()
    later = utcnow() + timedelta(minutes=10)
    reconciler = Reconciler(database, sender, stale_after_s=300, resend_after_s=RESEND_S,
                            clock=lambda: later)  # fmt: skip
    assert reconciler.run_once().resent == jobs
    assert listed_jobs(redis_broker)[::-1] == jobs  # kombu pushes left, workers pop right
