"""The one way jobs and studies are submitted: store once, commit, then enqueue.

An Idempotency-Key makes a submission happen once: a repeat of the same request (same request
hash) answers the row the first one made, another request with the key is refused (409), and
of two racing requests with one key the loser's insert hits the unique key, rolls back and
answers the winner's row. The broker hears of a job only after its row is committed, and
only when the dispatcher lets it go (persistence.dispatch: owners take turns, per-owner limits).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from api.errors import IdempotencyKeyReused, OwnerLimitExceeded
from persistence.broker import JobSender
from persistence.dispatch import DispatchPolicy, OwnerLimitReached, check_submission, dispatch
from persistence.repositories import IdempotencyConflict, SubmittedRepository
from persistence.repositories.base import RowT
from persistence.settings import SharedSettings
from persistence.tables import Job, Owner

log = logging.getLogger(__name__)


def refuse_past_limits(
    session: Session, owner: Owner, settings: SharedSettings, *, jobs: int, studies: int = 0
) -> None:
    """429 before anything is added when the owner's queued-jobs or studies limit would be
    passed (persistence.dispatch.check_submission; an idempotent replay never gets here)."""
    try:
        check_submission(session, owner, settings, jobs=jobs, studies=studies)
    except OwnerLimitReached as exc:
        raise OwnerLimitExceeded(
            f"{exc}; retry once some of your jobs have started or finished",
            retry_after_s=settings.limit_retry_after_s,
        ) from exc


def submit_once(
    session: Session,
    repository: SubmittedRepository[RowT],
    *,
    owner_id: uuid.UUID,
    idempotency_key: str | None,
    request_hash: str,
    insert: Callable[[], tuple[RowT, list[Job]]],
    enqueuer: JobSender,
    policy: DispatchPolicy,
) -> tuple[RowT, bool]:
    """`insert()` adds the row and its jobs (flushing; it raises before adding anything when a
    per-owner limit refuses them); answers the row and whether it is new (False: an
    idempotent replay)."""

    def replayed() -> RowT | None:
        assert idempotency_key is not None
        try:
            return repository.replay(owner_id, idempotency_key, request_hash)
        except IdempotencyConflict as exc:
            raise IdempotencyKeyReused() from exc

    if idempotency_key is not None and (existing := replayed()) is not None:
        return existing, False
    try:
        row, _jobs = insert()
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
    send_committed(session, enqueuer, policy)
    return row, True


def send_committed(session: Session, enqueuer: JobSender, policy: DispatchPolicy) -> None:
    """Enqueue after commit: a dispatch pass hands out what may run now (the new jobs, or
    other owners' first: the dispatcher decides). The submission is committed whatever
    happens here; a pass that fails is the reconciler's to redo (it dispatches every pass)."""
    try:
        dispatch(session, enqueuer, policy)
    except SQLAlchemyError:
        session.rollback()
        log.error("dispatch after a submission failed; the reconciler's next pass dispatches",
                  exc_info=True)  # fmt: skip
