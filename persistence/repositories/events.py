"""A job's event log (status changes, stages, checkpoints, artifacts, log lines)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from persistence.repositories.base import Clock
from persistence.tables import EventKind, JobEvent, JobStatus, utcnow


class JobEventRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def add(
        self,
        job_id: uuid.UUID,
        kind: EventKind | str,
        *,
        status: JobStatus | str | None = None,
        message: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> JobEvent:
        event = JobEvent(
            job_id=job_id,
            at=self._clock(),
            kind=str(kind),
            status=None if status is None else str(status),
            message=message,
            data=data,
        )
        self._session.add(event)
        self._session.flush()
        return event

    def list(
        self, job_id: uuid.UUID, *, after_id: int | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        query = select(JobEvent).where(JobEvent.job_id == job_id)
        if after_id is not None:
            query = query.where(JobEvent.id > after_id)
        return list(self._session.scalars(query.order_by(JobEvent.id).limit(limit)))
