"""The dispatcher (persistence.dispatch) on SQLite and PostgreSQL: what it hands to the
workers, in which order, under which limits, and where a waiting job stands."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from persistence.db import Database
from persistence.dispatch import (
    DispatchPolicy,
    OwnerLimitReached,
    check_submission,
    dispatch,
    queue_place,
)
from persistence.repositories import JobRepository, OwnerRepository, StudyRepository
from persistence.settings import Settings
from persistence.tables import JobStatus, Owner, utcnow
from tests.persistence.fixtures import make_owner


class Sender:
    def __init__(self) -> None:
        self.sent: list[uuid.UUID] = []
        self.lock = threading.Lock()

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        with self.lock:
            self.sent.append(job_id)


_tick = [0]


def submit(database: Database, owner_id: uuid.UUID, n: int, *, study: bool = False,
           queue: str = "gpu") -> list[uuid.UUID]:  # fmt: skip
    """`n` queued jobs of the owner (a study's children with `study`), created in order."""
    ids = []
    with database.session() as session:
        study_id = None
        if study:
            study_id = (
                StudyRepository(session)
                .create(owner_id=owner_id, spec={}, children=[], queue=queue)
                .id
            )
        for _ in range(n):
            _tick[0] += 1
            at = utcnow() + timedelta(microseconds=_tick[0])
            job = JobRepository(session, clock=lambda at=at: at).create(
                owner_id=owner_id, spec={}, spec_hash="h", queue=queue, study_id=study_id,
                study_key=None if study_id is None else f"k{len(ids)}",
            )  # fmt: skip
            ids.append(job.id)
        session.commit()
    return ids


def run_dispatch(database: Database, sender: Sender, policy: DispatchPolicy) -> list[uuid.UUID]:
    with database.session() as session:
        return dispatch(session, sender, policy)


def claim(database: Database, job_id: uuid.UUID) -> None:
    with database.session() as session:
        assert JobRepository(session).claim(job_id, "w1") is not None
        session.commit()


def finish(database: Database, job_id: uuid.UUID) -> None:
    with database.session() as session:
        JobRepository(session).transition(job_id, JobStatus.succeeded, worker_id="w1")
        session.commit()


def place(database: Database, job_id: uuid.UUID, policy: DispatchPolicy):
    with database.session() as session:
        job = JobRepository(session).get(job_id)
        return queue_place(session, job, policy)


def test_one_handed_out_job_per_queue_until_a_worker_claims_it(database: Database):
    owner, _ = make_owner(database)
    jobs = submit(database, owner, 3)
    sender, policy = Sender(), DispatchPolicy(ahead=1)
    assert run_dispatch(database, sender, policy) == [jobs[0]]
    assert run_dispatch(database, sender, policy) == []  # the slot is taken
    claim(database, jobs[0])
    assert run_dispatch(database, sender, policy) == [jobs[1]]
    with database.session() as session:
        sent = JobRepository(session).get(jobs[1])
        assert sent.dispatched_at is not None and sent.enqueued_at is not None
        assert JobRepository(session).get(jobs[2]).dispatched_at is None


def test_one_worker_two_owners_take_turns(database: Database):
    """Owner A queues 5 jobs, then B one: with one worker B's job starts right after the one
    A job handed out before it came, not after all of A's (first come, first served would
    start it sixth)."""
    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    sender, policy = Sender(), DispatchPolicy(ahead=1)
    a_jobs = submit(database, a, 5)
    run_dispatch(database, sender, policy)
    started: list[uuid.UUID] = []

    def worker_takes_next() -> None:
        job_id = sender.sent[len(started)]
        claim(database, job_id)
        started.append(job_id)
        run_dispatch(database, sender, policy)  # what the worker does after its claim

    worker_takes_next()  # a1 runs, a2 is handed out
    (b_job,) = submit(database, b, 1)
    run_dispatch(database, sender, policy)  # the API after B's commit: the slot is taken
    while len(started) < 6:
        finish(database, started[-1])
        run_dispatch(database, sender, policy)
        worker_takes_next()
    assert started == [a_jobs[0], a_jobs[1], b_job, *a_jobs[2:]]


def test_running_limit_per_owner_and_an_owner_s_own_limit(database: Database):
    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    a_jobs = submit(database, a, 5)
    b_jobs = submit(database, b, 3)
    sender, policy = Sender(), DispatchPolicy(max_running_per_owner=2, ahead=10)
    # Turns by count: a1 b1 a2 b2; then both are at their limit of 2.
    assert run_dispatch(database, sender, policy) == [a_jobs[0], b_jobs[0], a_jobs[1], b_jobs[1]]
    claim(database, a_jobs[0])
    finish(database, a_jobs[0])
    assert run_dispatch(database, sender, policy) == [a_jobs[2]]
    with database.session() as session:  # the admin lowers B's running limit to 1
        session.execute(update(Owner).where(Owner.id == b).values(max_running_jobs=1))
        session.commit()
    claim(database, b_jobs[0])
    finish(database, b_jobs[0])
    assert run_dispatch(database, sender, policy) == []  # B still has b2 handed out: 1 of 1


def test_a_study_s_jobs_count_as_its_owner_s(database: Database):
    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    study = submit(database, a, 4, study=True)
    (single,) = submit(database, b, 1)
    sender = Sender()
    assert run_dispatch(database, sender, DispatchPolicy(ahead=3)) == [study[0], single, study[1]]


def test_concurrent_dispatchers_hand_out_no_more_than_allowed(database: Database):
    owner, _ = make_owner(database)
    submit(database, owner, 12)
    sender, policy = Sender(), DispatchPolicy(ahead=2)
    errors: list[BaseException] = []

    def go() -> None:
        try:
            run_dispatch(database, sender, policy)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(sender.sent) == 2 and len(set(sender.sent)) == 2


def test_a_job_given_back_for_a_retry_stays_handed_out(database: Database):
    owner, _ = make_owner(database)
    first, second = submit(database, owner, 2)
    sender, policy = Sender(), DispatchPolicy(ahead=1)
    run_dispatch(database, sender, policy)
    claim(database, first)
    with database.session() as session:  # the worker gives it back (it re-sends it itself)
        JobRepository(session).transition(first, JobStatus.queued, worker_id="w1")
        session.commit()
    assert run_dispatch(database, sender, policy) == []  # `first` holds the one slot
    with database.session() as session:
        assert JobRepository(session).get(first).dispatched_at is not None
        assert JobRepository(session).get(second).dispatched_at is None


def test_place_in_the_queue_and_why_it_waits(database: Database):
    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    a_jobs = submit(database, a, 5)
    sender, policy = Sender(), DispatchPolicy(max_running_per_owner=3, ahead=1)
    for job_id in a_jobs[:3]:
        run_dispatch(database, sender, policy)
        claim(database, job_id)
    (b_job,) = submit(database, b, 1)
    run_dispatch(database, sender, policy)  # B's job is handed out: A is at its limit
    waiting = place(database, a_jobs[3], policy)
    assert waiting.reason == "3 of your jobs are running; limit 3"
    assert waiting.position == 2  # after B's handed-out job
    handed = place(database, b_job, policy)
    assert handed.position == 1 and handed.reason.startswith("handed to the workers")
    assert place(database, a_jobs[4], policy).position == 3
    assert place(database, a_jobs[0], policy) is None  # running: no place in the queue


def test_place_without_limits_counts_the_other_owners_turns(database: Database):
    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    a_jobs = submit(database, a, 3)
    (b_job,) = submit(database, b, 1)
    policy = DispatchPolicy(ahead=1)
    # Nothing handed out yet: a1 (oldest), then B's turn (0 running), then a2, a3.
    assert [place(database, j, policy).position for j in (*a_jobs, b_job)] == [1, 3, 4, 2]
    assert place(database, b_job, policy).reason == (
        "waiting for a free worker: 1 job(s) ahead of it (owners take turns)"
    )


def limits(**values: int) -> Settings:
    return Settings(_env_file=None, **values)


def test_queued_limit_refuses_what_would_pass_it(database: Database):
    owner_id, _ = make_owner(database)
    submit(database, owner_id, 2)
    settings = limits(max_queued_per_owner=3)
    with database.session() as session:
        owner = OwnerRepository(session).get(owner_id)
        check_submission(session, owner, settings, jobs=1)  # 3 of 3: fine
        with pytest.raises(OwnerLimitReached, match="limit of 3 queued jobs") as caught:
            check_submission(session, owner, settings, jobs=2)
        assert (caught.value.current, caught.value.adding) == (2, 2)


def test_studies_limit_counts_unfinished_studies_and_an_owner_s_zero_lifts_it(
    database: Database,
):
    owner_id, _ = make_owner(database)
    done = submit(database, owner_id, 1, study=True)
    submit(database, owner_id, 2, study=True)
    claim(database, done[0])
    finish(database, done[0])  # the first study is over: it no longer counts
    settings = limits(max_studies_per_owner=1)
    with database.session() as session:
        owner = OwnerRepository(session).get(owner_id)
        with pytest.raises(OwnerLimitReached, match="limit of 1 studies"):
            check_submission(session, owner, settings, jobs=2, studies=1)
        owner.max_studies = 0  # the admin lifts it for this owner
        session.flush()
        check_submission(session, owner, settings, jobs=2, studies=1)


def test_policy_refuses_nonsense():
    with pytest.raises(ValueError, match="ahead"):
        DispatchPolicy(ahead=0)
    with pytest.raises(ValueError, match="max_running_per_owner"):
        DispatchPolicy(max_running_per_owner=-1)


def test_startable_queued_leaves_out_jobs_of_an_owner_at_its_limit(database: Database):
    """The Slurm autoscaler's demand: no worker for a job that cannot start yet."""
    from persistence.dispatch import startable_queued
    from srnet.slurm.autoscale import count_jobs

    a, _ = make_owner(database, "lab-a")
    b, _ = make_owner(database, "lab-b")
    a_jobs = submit(database, a, 5)
    submit(database, b, 2)
    policy = DispatchPolicy(max_running_per_owner=2, ahead=1)
    sender = Sender()
    run_dispatch(database, sender, policy)  # a1 handed out
    claim(database, a_jobs[0])
    run_dispatch(database, sender, policy)  # B's turn: b1 handed out
    with database.session() as session:
        # b1 handed; A: 1 running, 4 waiting, 1 more may start; B: 1 waiting, no limit hit.
        assert startable_queued(session, ["gpu"], policy) == 1 + 1 + 1
        assert startable_queued(session, ["gpu"], DispatchPolicy()) == 6  # no limit: all
        assert startable_queued(session, ["cpu"], policy) == 0
    assert count_jobs(database, ("gpu",), policy) == (3, 1)
    assert count_jobs(database, ("gpu",)) == (6, 1)  # without a policy: every queued job
