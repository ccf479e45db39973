"""The reconciler against SQLite with a recording sender and a controlled clock: jobs the broker
never got or lost are sent, jobs whose worker died are recovered, nothing else is touched."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from persistence.db import Database
from persistence.repositories import JobRepository
from persistence.tables import Job, JobStatus, utcnow
from tests.worker.conftest import RecordingSender
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.reconciler import Reconciler

STALE_S = 300.0
RESEND_S = 120.0


@pytest.fixture
def database(sqlite_url: str):
    db = Database(sqlite_url)
    yield db
    db.dispose()


def reconciler(database, sender, minutes_later: float = 0.0) -> Reconciler:
    now = utcnow() + timedelta(minutes=minutes_later)
    return Reconciler(database, sender, stale_after_s=STALE_S, resend_after_s=RESEND_S,
                      clock=lambda: now)  # fmt: skip


def new_job(database, tmp_path, *, sent: bool, max_attempts: int = 3) -> uuid.UUID:
    job_id = create_job(database, tiny_job_spec(tmp_path / "m"), max_attempts=max_attempts)
    with database.session() as session:
        if sent:
            JobRepository(session).mark_enqueued(job_id)
        else:  # the dispatcher let it go, the broker did not take it (persistence.dispatch)
            session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))
        session.commit()
    return job_id


def running_job(database, tmp_path, *, minutes_ago: float, attempts: int = 1,
                max_attempts: int = 3) -> uuid.UUID:  # fmt: skip
    """A job claimed `attempts` times, the last heartbeat `minutes_ago`."""
    job_id = new_job(database, tmp_path, sent=True, max_attempts=max_attempts)
    then = utcnow() - timedelta(minutes=minutes_ago)
    with database.session() as session:
        repo = JobRepository(session, clock=lambda: then)
        for attempt in range(attempts):
            assert repo.claim(job_id, f"w{attempt}") is not None
            if attempt < attempts - 1:
                repo.transition(job_id, JobStatus.queued, worker_id=f"w{attempt}")
        session.commit()
    return job_id


def status(database, job_id) -> JobStatus:
    with database.session() as session:
        return JobRepository(session).get(job_id).job_status


def test_a_job_the_broker_never_got_is_sent(database, sender: RecordingSender, tmp_path):
    job_id = new_job(database, tmp_path, sent=False)
    assert reconciler(database, sender).run_once().resent == []  # the API may still send it
    report = reconciler(database, sender, minutes_later=1).run_once()
    assert report.resent == [job_id] and sender.sent == [(job_id, "gpu")]
    with database.session() as session:
        assert JobRepository(session).get(job_id).enqueued_at is not None


def test_queued_jobs_are_sent_again_only_when_the_broker_lost_them(
    database, sender: RecordingSender, tmp_path
):
    jobs = [new_job(database, tmp_path, sent=True) for _ in range(2)]
    sender.in_queue["gpu"] = 2  # the broker still holds both messages
    assert reconciler(database, sender, minutes_later=10).run_once().resent == []
    assert reconciler(database, sender).run_once().resent == []  # not overdue anyway

    sender.in_queue["gpu"] = 0  # Redis restarted and kept nothing
    report = reconciler(database, sender, minutes_later=10).run_once()
    assert sorted(report.resent) == sorted(jobs)
    assert sorted(j for j, _ in sender.sent) == sorted(jobs)

    sender.sent.clear()
    sender.in_queue["gpu"] = None  # the broker cannot say: send rather than lose a job
    assert len(reconciler(database, sender, minutes_later=20).run_once().resent) == 2


def test_a_running_job_whose_heartbeat_stopped_is_queued_and_sent(
    database, sender: RecordingSender, tmp_path
):
    dead = running_job(database, tmp_path, minutes_ago=10)
    alive = running_job(database, tmp_path, minutes_ago=1)
    report = reconciler(database, sender).run_once()
    assert report.recovered == [dead] and sender.sent == [(dead, "gpu")]
    assert status(database, dead) is JobStatus.queued
    assert status(database, alive) is JobStatus.running

    # A second reconciler (another host) right after finds nothing to do.
    again = reconciler(database, sender).run_once()
    assert not again and sender.sent == [(dead, "gpu")]


def test_a_dead_job_without_attempts_left_fails_with_the_reason(database, sender, tmp_path):
    job_id = running_job(database, tmp_path, minutes_ago=10, attempts=2, max_attempts=2)
    report = reconciler(database, sender).run_once()
    assert report.failed == [job_id] and sender.sent == []
    with database.session() as session:
        job = JobRepository(session).get(job_id)
    assert job.job_status is JobStatus.failed
    assert "stopped answering" in job.error and "2 of 2" in job.error


def test_a_job_whose_worker_died_while_cancelling_becomes_cancelled(database, sender, tmp_path):
    job_id = running_job(database, tmp_path, minutes_ago=10)
    with database.session() as session:
        JobRepository(session).request_cancel(job_id)
        session.commit()
    report = reconciler(database, sender).run_once()
    assert report.cancelled == [job_id] and status(database, job_id) is JobStatus.cancelled


def test_a_broker_that_refuses_leaves_the_job_for_the_next_pass(
    database, sender: RecordingSender, tmp_path
):
    job_id = running_job(database, tmp_path, minutes_ago=10)
    sender.fail = True
    report = reconciler(database, sender).run_once()
    assert report.recovered == [job_id] and report.send_errors == 1
    sender.fail = False
    # Queued, its last send long ago, and the broker holds no message for it: sent again
    # once RECONCILE_RESEND_AFTER_S has passed.
    assert reconciler(database, sender).run_once().resent == []
    report = reconciler(database, sender, minutes_later=5).run_once()
    assert report.resent == [job_id] and sender.sent == [(job_id, "gpu")]


def test_a_backlog_whose_messages_the_broker_holds_is_never_sent_again(
    database, sender: RecordingSender, tmp_path
):
    """Issue 19 item 12: one message fetched by a worker (not in the queue's list, not lost)
    made the reconciler send every overdue job again. By job id, only the lost one goes."""
    waiting, fetched, lost = (new_job(database, tmp_path, sent=True) for _ in range(3))
    sender.in_queue["gpu"] = 1  # the list holds one message: the count says two are short
    sender.listed["gpu"] = {waiting, fetched}  # …but only one job has no message
    report = reconciler(database, sender, minutes_later=10).run_once()
    assert report.resent == [lost] and sender.sent == [(lost, "gpu")]
    # The next pass, once the re-sent message is in the broker too: nothing.
    sender.listed["gpu"] = {waiting, fetched, lost}
    assert reconciler(database, sender, minutes_later=20).run_once().resent == []


def test_the_jobs_the_broker_lost_are_sent_oldest_send_first(
    database, sender: RecordingSender, tmp_path
):
    jobs = [new_job(database, tmp_path, sent=True) for _ in range(3)]
    # Re-send the first one a minute later: it is now the most recently sent.
    with database.session() as session:
        later = utcnow() + timedelta(minutes=1)
        JobRepository(session, clock=lambda: later).mark_enqueued(jobs[0])
        session.commit()
    sender.listed["gpu"] = set()  # Redis flushed
    report = reconciler(database, sender, minutes_later=10).run_once()
    assert report.resent == [jobs[1], jobs[2], jobs[0]]


def test_a_broker_that_only_counts_gets_as_many_as_it_is_short_oldest_first(
    database, sender: RecordingSender, tmp_path
):
    jobs = [new_job(database, tmp_path, sent=True) for _ in range(4)]
    sender.in_queue["gpu"] = 3  # no listing (pending_jobs is None): one short
    report = reconciler(database, sender, minutes_later=10).run_once()
    assert report.resent == [jobs[0]]


def test_a_job_claimed_while_the_broker_was_read_is_not_sent(
    database, sender: RecordingSender, tmp_path
):
    job_id = new_job(database, tmp_path, sent=True)

    class ClaimingWhileListing(RecordingSender):
        def pending_jobs(self, queue):
            with database.session() as session:  # a worker takes the message and the job
                JobRepository(session).claim(job_id, "w1")
                session.commit()
            return set()

    racing = ClaimingWhileListing()
    assert reconciler(database, racing, minutes_later=10).run_once().resent == []
    assert racing.sent == []
