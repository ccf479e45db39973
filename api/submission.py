"""The one way jobs and studies are submitted: store once, commit, then enqueue.

An Idempotency-Key makes a submission happen once: a repeat of the same request (same request
hash) answers the row the first one made, another request with the key is refused (409), and
of two racing requests with one key the loser's insert hits the unique key, rolls back and
answers the winner's row. The broker hears of a job only after its row is committed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.errors import IdempotencyKeyReused
from persistence.broker import JobSender
from persistence.repositories import IdempotencyConflict, JobRepository, SubmittedRepository
from persistence.repositories.base import RowT
from persistence.tables import Job

log = logging.getLogger(__name__)


def submit_once(
    session: Session,
    repository: SubmittedRepository[RowT],
    *,
    owner_id: uuid.UUID,
    idempotency_key: str | None,
    request_hash: str,
    insert: Callable[[], tuple[RowT, list[Job]]],
    enqueuer: JobSender,
) -> tuple[RowT, bool]:
    """`insert()` adds the row and its jobs (flushing); answers the row and whether it is new
    (False: an idempotent replay)."""

    def replayed() -> RowT | None:
        assert idempotency_key is not None
        try:
            return repository.replay(owner_id, idempotency_key, request_hash)
        except IdempotencyConflict as exc:
            raise IdempotencyKeyReused() from exc

    if idempotency_key is not None and (existing := replayed()) is not None:
        return existing, False
    try:
        row, jobs = insert()
        session.commit()
    except IntegrityError:
        # Another request with the same key committed between our read and our insert.
        session.rollback()
        if idempotency_key is None:
            raise
        existing = replayed()
        if existing is None:
            raise
        return existing, False
    send_committed(session, jobs, enqueuer)
    return row, True


def send_committed(session: Session, jobs: Iterable[Job], enqueuer: JobSender) -> None:
    """Enqueue after commit (the worker's claim will find the rows), then record the sends."""
    repository = JobRepository(session)
    sent = []
    for job in jobs:
        try:
            enqueuer.send(job.id, job.queue)
        except Exception:
            # The job stays queued with no enqueued_at; the reconciler sends it later.
            log.warning(
                "broker did not take job %s; the reconciler will resend it", job.id, exc_info=True
            )
            break
        sent.append(job.id)
    for job_id in sent:
        repository.mark_enqueued(job_id)
    if sent:
        session.commit()
