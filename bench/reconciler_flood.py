"""The reconciler under a backlog (issue 19 item 12), against the real Redis broker.

N queued jobs, W simulated workers and one reconciler pass every INTERVAL seconds with a
resend delay far below the backlog's wait. A worker behaves as Celery's does with acks late,
prefetch 1 and a fresh child per task: it fetches the next message (now unacknowledged, in
Redis's `unacked` hash, no longer in the queue's list) as soon as it acknowledged the last,
spends STARTUP seconds starting the child, then claims the job in the database (a duplicate
message is a no-op claim, but pays the startup too), runs it for RUN seconds and acknowledges.
Prints the messages sent per job, the time until the last job finished, until the last
message was consumed, and how long a job submitted as the last job finished waited in
`queued` (behind the duplicate messages a flood leaves).

    .venv/bin/python bench/reconciler_flood.py --jobs 40 --workers 2

Needs Redis (SRNET_BENCH_REDIS_URL, default redis://127.0.0.1:6379/13; keys under a random
prefix, deleted afterwards); the database is a SQLite file in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis

from persistence.broker import CeleryJobSender, make_celery_client
from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key
from persistence.repositories import JobRepository
from persistence.settings import Settings
from persistence.tables import JobStatus
from worker.reconciler import Reconciler


class SimulatedWorker(threading.Thread):
    def __init__(self, name: str, settings: Settings, database: Database, args, stop, stats):
        super().__init__(name=name, daemon=True)
        self.settings, self.database, self.args = settings, database, args
        self.stop, self.stats = stop, stats

    def run(self) -> None:
        app = make_celery_client(self.settings, name=self.name)
        with app.connection_for_read() as connection:
            queue = connection.SimpleQueue("gpu")
            queue.consumer.qos(prefetch_count=1)
            while not self.stop.is_set():
                try:
                    message = queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                time.sleep(self.args.startup)  # the fresh pool child starts
                job_id = uuid.UUID(message.payload[0][0])
                with self.database.session() as session:
                    job = JobRepository(session).claim(job_id, self.name)
                    session.commit()
                if job is None:
                    self.stats["noop_claims"] += 1
                else:
                    time.sleep(self.args.run)
                    with self.database.session() as session:
                        JobRepository(session).transition(
                            job_id, JobStatus.succeeded, worker_id=self.name
                        )
                        session.commit()
                    self.stats["finished_at"][job_id] = time.monotonic()
                    self.stats["claimed_at"][job_id] = time.monotonic() - self.args.run
                self.stats["consumed_at"] = time.monotonic()
                message.ack()
            queue.close()
        app.close()


class CountingSender(CeleryJobSender):
    def __init__(self, app, stats):
        super().__init__(app)
        self.stats = stats

    def send(self, job_id, queue):
        super().send(job_id, queue)
        self.stats["sent"] += 1


def submit(database: Database, sender: CountingSender, owner_id: uuid.UUID) -> uuid.UUID:
    with database.session() as session:
        repo = JobRepository(session)
        job = repo.create(owner_id=owner_id, spec={}, spec_hash="h", queue="gpu")
        session.commit()
        sender.send(job.id, "gpu")
        repo.mark_enqueued(job.id)
        session.commit()
        return job.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--startup", type=float, default=0.5, help="s per message, child start")
    parser.add_argument("--run", type=float, default=1.0, help="s per job")
    parser.add_argument("--resend-after", type=float, default=3.0)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()

    redis_url = os.environ.get("SRNET_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    prefix = f"srnet_bench_{secrets.token_hex(6)}:"
    folder = Path(tempfile.mkdtemp(prefix="srnet-flood-"))
    database_url = f"sqlite:///{folder / 'srnet.db'}"
    upgrade_database(database_url)
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        broker_url=redis_url,
        broker_key_prefix=prefix,
        artifact_store=f"file://{folder / 'a'}",
    )
    database = Database(database_url)
    stats = {"sent": 0, "noop_claims": 0, "finished_at": {}, "claimed_at": {},
             "consumed_at": 0.0}  # fmt: skip
    sender = CountingSender(make_celery_client(settings), stats)
    with database.session() as session:
        owner_id = create_api_key(session, "bench").owner.id
        session.commit()
    jobs = [submit(database, sender, owner_id) for _ in range(args.jobs)]

    stop = threading.Event()
    start = time.monotonic()
    workers = [SimulatedWorker(f"w{i}", settings, database, args, stop, stats)
               for i in range(args.workers)]  # fmt: skip
    for worker in workers:
        worker.start()
    reconciler = Reconciler(database, sender, stale_after_s=3600,
                            resend_after_s=args.resend_after)  # fmt: skip
    reconciler_stop = threading.Event()
    passes = threading.Thread(target=reconciler.run_forever,
                              args=(reconciler_stop, args.interval), daemon=True)  # fmt: skip
    passes.start()
    client = redis.Redis.from_url(redis_url)
    try:
        while len(stats["finished_at"]) < len(jobs):
            time.sleep(0.2)
        last_job = max(stats["finished_at"].values()) - start
        # A job submitted as the backlog's last job finishes: it waits behind whatever
        # duplicate messages are still in the queue.
        sent_for_backlog = stats["sent"]
        late = submit(database, sender, owner_id)
        submitted = time.monotonic()
        while late not in stats["claimed_at"]:
            time.sleep(0.1)
        late_wait = stats["claimed_at"][late] - submitted
        while client.llen(prefix + "gpu") or client.hlen(prefix + "unacked"):
            time.sleep(0.2)
        drained = stats["consumed_at"] - start
    finally:
        reconciler_stop.set()
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        sender.close()
        database.dispose()
    print(f"jobs {args.jobs}, workers {args.workers}, startup {args.startup} s, run {args.run} s, "
          f"resend after {args.resend_after} s, pass every {args.interval} s")  # fmt: skip
    print(
        f"messages sent for the backlog: {sent_for_backlog} "
        f"({sent_for_backlog / args.jobs:.2f} per job); no-op claims {stats['noop_claims']}"
    )
    print(f"last job finished after {last_job:.1f} s; last message consumed after {drained:.1f} s")
    print(f"a job submitted as the last one finished waited {late_wait:.2f} s in queued")


if __name__ == "__main__":
    main()
