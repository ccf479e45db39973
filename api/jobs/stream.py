"""The job's events as server-sent events: replay what the client has not seen (after
`Last-Event-ID`), then poll the database (the source of truth, shared by every API process) for
new events and progress, and end once the job has finished and everything was sent."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import Request

from api.jobs.schemas import JobEventPublic, JobPublic
from persistence.db import Database
from persistence.repositories import JobEventRepository, JobRepository

PAGE = 500
MAX_EVENT_ID = 2**63 - 1  # the database's BIGINT: a larger cursor is a 422, not a 500


class ShutdownSignal:
    """Set when the server is told to stop (SIGTERM, SIGINT): open event streams end at once
    (`event: end`, reason shutdown; clients reconnect with Last-Event-ID) instead of holding
    the server past its graceful timeout. `install` chains the handlers the server put in
    place (uvicorn's, which still stop it); outside the main thread it does nothing."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._event = threading.Event()
        self._previous: dict[int, Any] = {}

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            previous = signal.getsignal(sig)
            self._previous[sig] = previous

            def handler(signum: int, frame: Any, previous: Any = previous) -> None:
                self._event.set()
                if callable(previous):
                    previous(signum, frame)
                elif previous == signal.SIG_DFL:
                    signal.default_int_handler(signum, frame)

            signal.signal(sig, handler)

    def uninstall(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def sse_message(data: Any, *, event: str | None = None, event_id: int | None = None) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    # JSON has no raw newlines, so one data line is enough.
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return "\n".join(lines) + "\n\n"


def parse_last_event_id(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        parsed = int(value.strip())
    except ValueError:
        return None
    return parsed if 0 <= parsed <= MAX_EVENT_ID else None


def _poll(
    database: Database, job_id: uuid.UUID, after: int | None
) -> tuple[JobPublic | None, list[JobEventPublic]]:
    with database.session() as session:
        # Status first, then events: a terminal status read here has its event in the page.
        job = JobRepository(session).get(job_id)
        events = JobEventRepository(session).list(job_id, after_id=after, limit=PAGE)
        return (
            JobPublic.of(job) if job else None,
            [JobEventPublic.of(e) for e in events],
        )


async def job_event_stream(
    request: Request,
    database: Database,
    job_id: uuid.UUID,
    *,
    last_event_id: int | None,
    poll_interval_s: float,
    keepalive_s: float,
    shutdown: ShutdownSignal | None = None,
) -> AsyncIterator[str]:
    after = last_event_id
    last_progress: tuple[Any, ...] | None = None
    last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        if shutdown is not None and shutdown.is_set():
            yield sse_message({"reason": "shutdown"}, event="end")
            return
        job, events = await anyio.to_thread.run_sync(_poll, database, job_id, after)
        if job is None:  # deleted while streaming
            yield sse_message({"reason": "job deleted"}, event="end")
            return
        for event in events:
            yield sse_message(event.model_dump(mode="json"), event="event", event_id=event.id)
            after = event.id
            last_sent = time.monotonic()
        progress = (job.status, job.stage, job.progress.step, job.progress.total, job.eta_s)
        if progress != last_progress:
            last_progress = progress
            # No id: progress is a snapshot, not part of the log a reconnect replays.
            yield sse_message(job.model_dump(mode="json"), event="progress")
            last_sent = time.monotonic()
        if job.status.is_terminal and len(events) < PAGE:
            yield sse_message({"status": job.status.value}, event="end")
            return
        if len(events) == PAGE:
            continue  # more to replay: no sleep
        if time.monotonic() - last_sent >= keepalive_s:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        if await request.is_disconnected():
            return
        waited = 0.0
        while waited < poll_interval_s and not (shutdown is not None and shutdown.is_set()):
            await anyio.sleep(min(0.1, poll_interval_s - waited))
            waited += 0.1
