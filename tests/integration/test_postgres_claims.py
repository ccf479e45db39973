"""Claim races under real PostgreSQL concurrency (READ COMMITTED, row locks)."""

from __future__ import annotations

import threading
from collections import Counter

from persistence.db import Database
from persistence.repositories import JobRepository
from tests.persistence.fixtures import make_owner


def test_many_workers_many_jobs_each_job_claimed_once(pg_url):
    database = Database(pg_url)
    try:
        owner_id, _ = make_owner(database)
        with database.session() as session:
            repo = JobRepository(session)
            job_ids = [repo.create(owner_id=owner_id, spec={}, spec_hash="h").id for _ in range(20)]
            session.commit()
        wins: Counter[str] = Counter()
        claimed_by: dict = {}
        lock = threading.Lock()
        start = threading.Barrier(4)

        def worker(name: str) -> None:
            start.wait(timeout=10)
            for job_id in job_ids:
                with database.session() as session:
                    job = JobRepository(session).claim(job_id, name)
                    session.commit()
                if job is not None:
                    with lock:
                        wins[name] += 1
                        assert job_id not in claimed_by
                        claimed_by[job_id] = name

        threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sum(wins.values()) == 20 and set(claimed_by) == set(job_ids)
        with database.session() as session:
            repo = JobRepository(session)
            for job_id in job_ids:
                job = repo.get(job_id)
                assert job.worker_id == claimed_by[job_id] and job.attempt == 1
                events = [e for e in repo.events.list(job_id) if e.status == "running"]
                assert len(events) == 1
    finally:
        database.dispose()
