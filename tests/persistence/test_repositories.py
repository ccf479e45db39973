"""JobRepository and friends, on SQLite and on PostgreSQL (the `database_url` fixture)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from persistence.db import Database
from persistence.repositories import (
    ArtifactRepository,
    InvalidCursor,
    InvalidTransition,
    JobEventRepository,
    JobRepository,
    Lease,
    MetricRepository,
)
from persistence.tables import Artifact, ArtifactKind, Job, JobEvent, JobStatus
from tests.persistence.fixtures import make_owner

SPEC = {"task": "mnli", "pruning": {"sparsities": [0.5]}}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def new_job(database: Database, owner_id: uuid.UUID, clock=None, **kw) -> uuid.UUID:
    with database.session() as session:
        repo = JobRepository(session, clock) if clock else JobRepository(session)
        job = repo.create(owner_id=owner_id, spec=SPEC, spec_hash="h" * 64, **kw)
        session.commit()
        return job.id


def statuses_of_events(database: Database, job_id: uuid.UUID) -> list[tuple[str, str | None]]:
    with database.session() as session:
        return [(e.kind, e.status) for e in JobEventRepository(session).list(job_id)]


def test_create_records_a_created_event_and_aware_timestamps(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id, name="first")
    with database.session() as session:
        job = JobRepository(session).get(job_id)
        assert job is not None
        assert job.status == "queued" and job.attempt == 0 and job.max_attempts == 3
        assert job.spec == SPEC and job.name == "first"
        assert job.created_at.tzinfo is not None
        assert job.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - job.created_at) < timedelta(minutes=1)
    assert statuses_of_events(database, job_id) == [("created", "queued")]


def test_naive_datetimes_are_refused(database):
    owner_id, _ = make_owner(database)
    with database.session() as session:
        session.add(
            Job(owner_id=owner_id, spec=SPEC, spec_hash="h", created_at=datetime(2026, 1, 1))
        )
        with pytest.raises(Exception, match="naive"):
            session.flush()


def test_other_owner_sees_nothing(database):
    alice, _ = make_owner(database)
    bob, _ = make_owner(database)
    job_id = new_job(database, alice)
    with database.session() as session:
        repo = JobRepository(session)
        assert repo.get(job_id, owner_id=bob) is None
        assert repo.get(job_id, owner_id=alice) is not None
        assert repo.list(bob).items == []
        assert repo.count(bob) == 0


def test_idempotency_key_is_unique_per_owner(database):
    alice, _ = make_owner(database)
    bob, _ = make_owner(database)
    new_job(database, alice, idempotency_key="k1", request_hash="a" * 64)
    new_job(database, bob, idempotency_key="k1", request_hash="a" * 64)  # another owner: fine
    new_job(database, alice)  # no key twice: fine
    new_job(database, alice)
    with pytest.raises(IntegrityError):
        new_job(database, alice, idempotency_key="k1", request_hash="b" * 64)
    with database.session() as session:
        found = JobRepository(session).get_by_idempotency_key(alice, "k1")
        assert found is not None and found.request_hash == "a" * 64


def test_cursor_pagination_is_newest_first_and_complete(database):
    owner_id, _ = make_owner(database)
    clock = FakeClock()
    ids = []
    for i in range(7):
        # Two jobs share each timestamp: the id breaks the tie.
        if i % 2 == 0:
            clock.advance(seconds=1)
        ids.append(new_job(database, owner_id, clock))
    seen: list[uuid.UUID] = []
    cursor = None
    pages = []
    with database.session() as session:
        repo = JobRepository(session)
        while True:
            page = repo.list(owner_id, limit=3, cursor=cursor)
            pages.append(len(page.items))
            seen += [job.id for job in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert repo.count(owner_id) == 7
    assert pages == [3, 3, 1]
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 7
    created = []
    with database.session() as session:
        for job_id in seen:
            created.append(session.get(Job, job_id).created_at)
    assert created == sorted(created, reverse=True)


def test_status_filter_and_bad_cursor(database):
    owner_id, _ = make_owner(database)
    a = new_job(database, owner_id)
    new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        repo.request_cancel(a)
        session.commit()
        page = repo.list(owner_id, statuses=[JobStatus.cancelled])
        assert [job.id for job in page.items] == [a]
        assert repo.count(owner_id, statuses=[JobStatus.queued]) == 1
        for bad in ["nonsense", "e30", "eyJ0IjoiMjAyNiJ9"]:
            with pytest.raises(InvalidCursor):
                repo.list(owner_id, cursor=bad)


def test_claim_from_queued_once(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        job = repo.claim(job_id, "w1")
        session.commit()
        assert job is not None
        assert (job.status, job.worker_id, job.attempt) == ("running", "w1", 1)
        assert job.started_at is not None and job.heartbeat_at is not None
        assert repo.claim(job_id, "w2") is None
        session.commit()
        assert repo.get(job_id).worker_id == "w1"
    assert statuses_of_events(database, job_id) == [("created", "queued"), ("status", "running")]


def test_a_job_given_back_at_shutdown_gets_its_attempt_back(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        repo.mark_enqueued(job_id)
        assert repo.claim(job_id, "w1").attempt == 1
        session.commit()
        job = repo.transition(job_id, JobStatus.queued, worker_id="w1", refund_attempt=True)
        session.commit()
        assert (job.status, job.attempt, job.worker_id) == ("queued", 0, None)
        assert job.enqueued_at is None  # not on the broker until it is sent again
        assert repo.claim(job_id, "w2").attempt == 1
        session.commit()
        with pytest.raises(ValueError, match="queue"):
            repo.transition(job_id, JobStatus.failed, worker_id="w2", refund_attempt=True)


def test_two_sessions_claim_the_same_job_exactly_one_wins(database):
    owner_id, _ = make_owner(database)
    job_ids = [new_job(database, owner_id) for _ in range(5)]
    for job_id in job_ids:
        barrier = threading.Barrier(2)
        results: dict[str, bool] = {}
        errors: list[BaseException] = []

        def worker(
            name: str, job_id=job_id, barrier=barrier, results=results, errors=errors
        ) -> None:
            try:
                with database.session() as session:
                    barrier.wait(timeout=10)
                    won = JobRepository(session).claim(job_id, name) is not None
                    session.commit()
                    results[name] = won
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not errors, errors
        assert sorted(results.values()) == [False, True]
        winner = next(name for name, won in results.items() if won)
        with database.session() as session:
            job = session.get(Job, job_id)
            assert job.worker_id == winner and job.attempt == 1


def test_claim_refused_after_cancel_or_when_attempts_are_used(database):
    owner_id, _ = make_owner(database)
    cancelled = new_job(database, owner_id)
    exhausted = new_job(database, owner_id, max_attempts=1)
    clock = FakeClock()
    with database.session() as session:
        repo = JobRepository(session, clock)
        repo.request_cancel(cancelled)
        assert repo.claim(cancelled, "w") is None
        assert repo.claim(exhausted, "w1") is not None
        clock.advance(hours=1)
        # Stale, but its one attempt is used: not claimable; the reconciler fails it.
        assert repo.claim(exhausted, "w2", stale_after=timedelta(minutes=5)) is None
        failed = repo.recover_stale(exhausted, stale_after=timedelta(minutes=5))
        session.commit()
        assert failed is not None and failed.status == "failed"
        assert "1 of 1 attempts" in failed.error


def test_stale_running_job_is_reclaimed_and_the_old_worker_loses_it(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    clock = FakeClock()
    stale = timedelta(minutes=5)
    with database.session() as session:
        repo = JobRepository(session, clock)
        assert repo.claim(job_id, "w1") is not None
        clock.advance(minutes=4)
        assert repo.heartbeat(job_id, "w1") is Lease.owned
        clock.advance(minutes=4)
        assert repo.claim(job_id, "w2", stale_after=stale) is None  # heartbeat 4 min old
        clock.advance(minutes=2)
        job = repo.claim(job_id, "w2", stale_after=stale)
        session.commit()
        assert job is not None and (job.worker_id, job.attempt) == ("w2", 2)
        assert repo.heartbeat(job_id, "w1") is Lease.lost
        with pytest.raises(InvalidTransition):
            repo.transition(job_id, JobStatus.succeeded, worker_id="w1")
        done = repo.transition(job_id, JobStatus.succeeded, worker_id="w2")
        session.commit()
        assert done.status == "succeeded" and done.finished_at == clock.now
    kinds = statuses_of_events(database, job_id)
    assert kinds[-3:] == [("status", "running"), ("status", "running"), ("status", "succeeded")]


def test_progress_stage_and_lease(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        assert repo.update_progress(job_id, "w1", step=1, total=10) is Lease.lost  # not claimed
        repo.claim(job_id, "w1")
        assert repo.set_stage(job_id, "w1", "search", "seed 1, sparsity 0.5") is Lease.owned
        assert (
            repo.update_progress(job_id, "w1", step=4, total=10, examples_per_s=12.5, eta_s=30.0)
            is Lease.owned
        )
        session.commit()
        job = repo.get(job_id)
        assert (job.stage, job.progress_step, job.progress_total) == ("search", 4, 10)
        assert (job.examples_per_s, job.eta_s) == (12.5, 30.0)
        repo.request_cancel(job_id)
        session.commit()
        assert repo.heartbeat(job_id, "w1") is Lease.cancel_requested
        assert repo.heartbeat(job_id, "someone-else") is Lease.lost
        events = JobEventRepository(session).list(job_id)
        stage_events = [e for e in events if e.kind == "stage"]
        assert stage_events[0].data == {"stage": "search", "detail": "seed 1, sparsity 0.5"}


def test_transitions_follow_the_table(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        with pytest.raises(ValueError):
            repo.transition(job_id, JobStatus.running)
        with pytest.raises(InvalidTransition):
            repo.transition(job_id, JobStatus.succeeded)  # queued cannot succeed
        repo.claim(job_id, "w1")
        failed = repo.transition(job_id, JobStatus.failed, worker_id="w1", error="out of memory")
        assert failed.error == "out of memory" and failed.finished_at is not None
        with pytest.raises(InvalidTransition) as info:
            repo.transition(job_id, JobStatus.queued)
        assert info.value.current is JobStatus.failed
        session.commit()
        last = JobEventRepository(session).list(job_id)[-1]
        assert (last.kind, last.status, last.data["from"]) == ("status", "failed", "running")


def test_retry_gives_the_job_back(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        repo.claim(job_id, "w1")
        job = repo.transition(job_id, JobStatus.queued, worker_id="w1", message="retry")
        assert (job.status, job.worker_id, job.heartbeat_at) == ("queued", None, None)
        again = repo.claim(job_id, "w2")
        session.commit()
        assert again.attempt == 2 and again.worker_id == "w2"


def test_cancel_semantics(database):
    owner_id, _ = make_owner(database)
    queued = new_job(database, owner_id)
    running = new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        job = repo.request_cancel(queued)
        assert job.status == "cancelled" and job.finished_at is not None
        repo.claim(running, "w1")
        job = repo.request_cancel(running)
        assert job.status == "cancelling" and job.cancel_requested is True
        assert repo.request_cancel(running).status == "cancelling"  # asking twice is fine
        done = repo.transition(running, JobStatus.cancelled, worker_id="w1")
        assert done.status == "cancelled"
        for job_id in (queued, running):
            with pytest.raises(InvalidTransition):
                repo.request_cancel(job_id)
        session.commit()


def test_recover_stale_jobs(database):
    owner_id, _ = make_owner(database)
    clock = FakeClock()
    stale = timedelta(minutes=5)
    running = new_job(database, owner_id, clock)
    cancelling = new_job(database, owner_id, clock)
    fresh = new_job(database, owner_id, clock)
    with database.session() as session:
        repo = JobRepository(session, clock)
        for job_id in (running, cancelling):
            repo.claim(job_id, "dead")
        repo.request_cancel(cancelling)
        clock.advance(minutes=10)
        repo.claim(fresh, "alive")
        session.commit()
        assert {j.id for j in repo.find_stale(stale_after=stale)} == {running, cancelling}
        assert repo.recover_stale(fresh, stale_after=stale) is None
        back = repo.recover_stale(running, stale_after=stale)
        assert back.status == "queued" and back.worker_id is None and back.attempt == 1
        assert repo.recover_stale(cancelling, stale_after=stale).status == "cancelled"
        session.commit()
        assert repo.find_stale(stale_after=stale) == []
        # The recovered job is waiting to be re-sent; resending marks it.
        queued_ids = {j.id for j in repo.find_queued_for_enqueue(not_sent_for=timedelta(0))}
        assert running in queued_ids
        repo.mark_enqueued(running)
        session.commit()
        waiting = repo.find_queued_for_enqueue(not_sent_for=timedelta(minutes=1))
        assert running not in {j.id for j in waiting}
        clock.advance(minutes=2)
        waiting = repo.find_queued_for_enqueue(not_sent_for=timedelta(minutes=1))
        assert running in {j.id for j in waiting}


def test_count_by_status_covers_every_status(database):
    owner_id, _ = make_owner(database)
    a = new_job(database, owner_id)
    new_job(database, owner_id)
    with database.session() as session:
        repo = JobRepository(session)
        repo.request_cancel(a)
        session.commit()
        counts = repo.count_by_status()
    assert counts[JobStatus.queued] == 1 and counts[JobStatus.cancelled] == 1
    assert set(counts) == set(JobStatus) and counts[JobStatus.running] == 0


def test_metrics_one_selected_point_per_curve(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        metrics = MetricRepository(session)
        points = [
            metrics.add(
                job_id,
                stage="search",
                step=s,
                seed=1,
                sparsity=0.5,
                payload={"dev_accuracy": 0.6 + s / 100},
            )
            for s in (10, 20, 30)
        ]
        other = metrics.add(
            job_id,
            stage="search",
            step=10,
            seed=1,
            sparsity=0.7,
            payload={"dev_accuracy": 0.5},
            selected=True,
        )
        metrics.select(points[1].id)
        metrics.select(points[2].id)
        session.commit()
        rows = metrics.list(job_id)
    selected = {(m.sparsity, m.step) for m in rows if m.selected}
    assert selected == {(0.5, 30), (0.7, 10)}
    assert rows[-1].id == other.id and rows[0].payload == {"dev_accuracy": 0.7}


def test_artifacts_inline_or_stored_never_both(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    other_job = new_job(database, owner_id)
    with database.session() as session:
        artifacts = ArtifactRepository(session)
        mask = artifacts.add(
            job_id,
            kind=ArtifactKind.mask,
            name="mask-0.5.safetensors",
            size=3,
            sha256="0" * 64,
            data=b"abc",
            seed=1,
            sparsity=0.5,
        )
        ckpt = artifacts.add(
            job_id,
            kind=ArtifactKind.checkpoint,
            name="ckpt.tar",
            size=10,
            sha256="1" * 64,
            storage_key="jobs/x/y.tar",
        )
        with pytest.raises(ValueError):
            artifacts.add(job_id, kind=ArtifactKind.report, name="r", size=1, sha256="2" * 64)
        session.commit()
        assert [a.name for a in artifacts.list(job_id)] == ["mask-0.5.safetensors", "ckpt.tar"]
        assert artifacts.get(other_job, mask.id) is None
        assert artifacts.read_inline(mask.id) == b"abc"
        assert artifacts.get(job_id, ckpt.id).storage_key == "jobs/x/y.tar"
        kinds = [e.kind for e in JobEventRepository(session).list(job_id)]
        assert kinds.count("artifact") == 2
    # The database itself refuses a row with no bytes anywhere (the CHECK constraint).
    with database.session() as session:
        session.add(Artifact(job_id=job_id, kind="report", name="bad", size=0, sha256="x"))
        with pytest.raises(IntegrityError):
            session.flush()


def test_deleting_a_job_removes_its_rows(database):
    owner_id, _ = make_owner(database)
    job_id = new_job(database, owner_id)
    with database.session() as session:
        MetricRepository(session).add(job_id, stage="dense", step=1, payload={})
        session.delete(session.get(Job, job_id))
        session.commit()
        assert session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all() == []
