"""Handing jobs to workers through the Celery broker: the one sender the API, the worker and the
reconciler use (torch-free; imports no task code).

Jobs are sent BY NAME (`RUN_JOB_TASK`), so the API never imports the worker or torch. A job is
sent only after its row is committed (enqueue after commit): a worker never receives a job the
database does not have. If the broker is down the job stays `queued` with no `enqueued_at` and
the reconciler sends it later: the database is the source of truth, never the broker.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import sqlite3
import threading
import uuid
from typing import Any, Protocol

from celery import Celery

from persistence.db import _sqlite_file, ensure_sqlite_folder
from persistence.settings import SharedSettings

log = logging.getLogger(__name__)

# The worker registers its task under this name (worker.tasks); everyone else sends to it.
RUN_JOB_TASK = "srnet.run_job"


def ensure_broker_folder(broker_url: str) -> None:
    """The embedded broker is a SQLite file: its folder must exist before the first connect,
    and the file is put in WAL mode (persistent in the file, so kombu's own connections in the
    API and the workers get it): a send's commit then syncs one WAL append instead of a
    rollback journal and the database file (3.7 ms instead of 12.4 ms a send here), and the
    workers' polling reads no longer block the API's sends."""
    if broker_url.startswith("sqla+sqlite"):
        url = broker_url.removeprefix("sqla+")
        ensure_sqlite_folder(url)
        path = _sqlite_file(url)
        if path is not None:
            try:
                with contextlib.closing(sqlite3.connect(path, timeout=5)) as connection:
                    connection.execute("PRAGMA journal_mode = WAL")
            except sqlite3.Error as exc:  # busy or read-only: kombu works without it
                log.warning("could not put the broker file %s in WAL mode: %s", path, exc)


def celery_config(settings: SharedSettings) -> dict[str, Any]:
    """What every Celery app of the service shares, senders and workers alike: JSON messages,
    no results, the default queue and the broker transport options (key prefix, visibility
    timeout, timeouts; the API's client and the worker must agree on them)."""
    return {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_default_queue": settings.default_queue,
        "broker_transport_options": settings.broker_transport_options(),
        "broker_connection_timeout": settings.broker_connect_timeout_s,
    }


def make_celery_client(settings: SharedSettings, name: str = "srnet-api") -> Celery:
    """A Celery app that only sends: no task modules, no result backend."""
    ensure_broker_folder(settings.broker_url)
    app = Celery(name, broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        celery_config(settings),
        broker_connection_retry_on_startup=False,
        # A request must not hang on a dead broker: a couple of quick retries, then the
        # reconciler's turn.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app


class JobSender(Protocol):
    def send(self, job_id: uuid.UUID, queue: str) -> None:
        """Hand the job to the broker; raises if the broker did not take it."""
        ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        ...

    def waiting(self, queue: str) -> int | None:
        """Messages waiting in `queue`; None when the broker cannot say."""
        ...

    def pending_jobs(self, queue: str) -> set[uuid.UUID] | None:
        """The jobs that have a message in the broker for `queue`, waiting or delivered to a
        worker and not acknowledged yet; None when the broker cannot say."""
        ...


# Messages read per call when listing a queue (a lab's backlog is far smaller).
PENDING_SCAN_LIMIT = 10_000
_SCAN_CHUNK = 500


class UnreadableMessage(ValueError):
    """A broker message that is not one of ours in a form we know: listing cannot be trusted."""


def job_id_of_message(message: bytes | str | dict[str, Any]) -> uuid.UUID | None:
    """The job a Celery message (kombu's JSON envelope, as the Redis and SQLAlchemy transports
    store it, or the envelope already parsed) asks to run; None for another task's message.
    Raises UnreadableMessage for an envelope this code cannot read (then no listing of the
    queue is trusted)."""
    try:
        envelope = message if isinstance(message, dict) else json.loads(message)
        if envelope.get("headers", {}).get("task") != RUN_JOB_TASK:
            return None
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return uuid.UUID(str(args[0]))
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise UnreadableMessage(f"unreadable broker message: {exc}") from exc


class CeleryJobSender:
    """Sends jobs by task name through `app`: the API's send-only client
    (`CeleryJobSender.from_settings`) or a worker's own app (a job given back re-sends itself)."""

    def __init__(self, app: Celery):
        self.app = app
        url = str(app.conf.broker_url or "")
        ensure_broker_folder(url)
        # The embedded broker is one SQLite file: concurrent sends from the API's threads would
        # meet SQLite's busy handler (sleeps up to 100 ms, no queue: a p99 of 0.7 s under 16
        # clients). They take turns on a lock instead; other processes still share the file.
        self._send_lock = threading.Lock() if url.startswith("sqla+sqlite") else None

    @classmethod
    def from_settings(cls, settings: SharedSettings, name: str = "srnet-api") -> CeleryJobSender:
        return cls(make_celery_client(settings, name))

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        if self._send_lock is None:
            self.app.send_task(RUN_JOB_TASK, args=[str(job_id)], queue=queue)
            return
        with self._send_lock:
            self.app.send_task(RUN_JOB_TASK, args=[str(job_id)], queue=queue)

    def ping(self) -> None:
        with self.app.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=self.app.conf.broker_connection_timeout
            )

    def waiting(self, queue: str) -> int | None:
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                # kombu's virtual transports (Redis, SQLAlchemy) count pending messages with
                # `_size`; a passive declare fails on them for an empty or prefixed queue.
                size = getattr(channel, "_size", None)
                if callable(size):
                    return int(size(queue))
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
                return int(count)
        except Exception as exc:  # any broker trouble: we cannot say
            log.warning("cannot count the messages in queue %s: %s", queue, exc)
            return None

    def pending_jobs(self, queue: str) -> set[uuid.UUID] | None:
        """Redis: the job ids in the queue's lists (every priority step) and in the `unacked`
        hash, where a message a worker has fetched (prefetched or running, acks late) stays
        until it is acknowledged; it is no longer in the list, and counting the list alone
        made the reconciler take every such job for lost. The list is read before the hash: a
        message moving from one to the other meanwhile is seen in the hash.
        The embedded SQLAlchemy broker: the messages not yet delivered (a delivered one is
        kept, marked invisible, and cannot be told from a consumed one; prefetch 1 and the
        worker's immediate claim keep that window short).
        None for another transport, broker trouble or a message we cannot read."""
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                if hasattr(channel, "unacked_key") and hasattr(channel, "_q_for_pri"):
                    return _redis_pending_jobs(channel, queue)
                if hasattr(channel, "message_cls") and hasattr(channel, "_query_all"):
                    return _sqlalchemy_pending_jobs(channel, queue)
                return None
        except UnreadableMessage as exc:
            log.warning("cannot list the jobs in queue %s: %s", queue, exc)
            return None
        except Exception as exc:  # any broker trouble: we cannot say
            log.warning("cannot list the jobs in queue %s: %s", queue, exc)
            return None

    def close(self) -> None:
        self.app.close()


def _redis_pending_jobs(channel: Any, queue: str) -> set[uuid.UUID] | None:
    # kombu prefixes only the commands it uses itself (not LRANGE, HSCAN): add the prefix here.
    prefix = str(getattr(channel, "global_keyprefix", "") or "")
    client = channel.client
    found: set[uuid.UUID] = set()
    read = 0
    keys = dict.fromkeys(channel._q_for_pri(queue, pri) for pri in channel.priority_steps)
    for key in keys:
        start = 0
        while True:
            chunk = client.lrange(prefix + key, start, start + _SCAN_CHUNK - 1)
            for raw in chunk:
                job_id = job_id_of_message(raw)
                if job_id is not None:
                    found.add(job_id)
            read += len(chunk)
            if read > PENDING_SCAN_LIMIT:
                log.warning("queue %s holds more than %d messages: not listed", queue, read)
                return None
            if len(chunk) < _SCAN_CHUNK:
                break
            start += _SCAN_CHUNK
    for _tag, value in client.hscan_iter(prefix + channel.unacked_key, count=_SCAN_CHUNK):
        try:
            raw_message = json.loads(value)[0]
        except (ValueError, TypeError, IndexError) as exc:
            raise UnreadableMessage(f"unreadable unacked entry: {exc}") from exc
        job_id = job_id_of_message(raw_message)
        if job_id is not None:
            found.add(job_id)  # any queue: a job has one, and its message is in flight
    return found


def _sqlalchemy_pending_jobs(channel: Any, queue: str) -> set[uuid.UUID] | None:
    message_cls = channel.message_cls
    try:
        rows = (
            channel._query_all(queue)
            .filter(message_cls.visible.is_(True))
            .limit(PENDING_SCAN_LIMIT + 1)
            .all()
        )
    finally:
        channel.session.commit()  # end the read transaction: the SQLite file stays unlocked
    if len(rows) > PENDING_SCAN_LIMIT:
        log.warning("queue %s holds more than %d messages: not listed", queue, len(rows) - 1)
        return None
    found: set[uuid.UUID] = set()
    for row in rows:
        job_id = job_id_of_message(row.payload)
        if job_id is not None:
            found.add(job_id)
    return found
