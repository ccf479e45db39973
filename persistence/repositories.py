"""Every query of the service lives here. Repositories flush but never commit: the request
handler or the worker task that owns the unit of work commits (and enqueues after that).

State changes of a job are conditional UPDATEs (`... WHERE status = <expected>`): the database,
not the broker or a lock in some process, decides which of two racing writers wins.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, defer

from persistence.models import (
    TERMINAL_STATUSES,
    ApiKey,
    Artifact,
    ArtifactKind,
    EventKind,
    Job,
    JobEvent,
    JobStatus,
    Metric,
    Owner,
    utcnow,
)

T = TypeVar("T")
Clock = Callable[[], datetime]

# Which status may follow which. `running` is entered only through `JobRepository.claim`.
ALLOWED_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.queued: frozenset({JobStatus.cancelled, JobStatus.failed}),
    JobStatus.running: frozenset(
        {
            JobStatus.succeeded,
            JobStatus.failed,
            JobStatus.cancelling,
            JobStatus.cancelled,
            JobStatus.queued,  # a retry: the worker gives the job back, attempts remain
        }
    ),
    # A job may finish (or fail) before it notices the cancel request.
    JobStatus.cancelling: frozenset({JobStatus.cancelled, JobStatus.succeeded, JobStatus.failed}),
    JobStatus.succeeded: frozenset(),
    JobStatus.failed: frozenset(),
    JobStatus.cancelled: frozenset(),
}


class JobNotFound(LookupError):
    def __init__(self, job_id: uuid.UUID):
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class InvalidTransition(Exception):
    """The job is not in a status from which the requested one may follow."""

    def __init__(self, job_id: uuid.UUID, current: JobStatus, requested: JobStatus, why: str = ""):
        detail = f": {why}" if why else ""
        super().__init__(
            f"job {job_id} is {current.value}, cannot become {requested.value}{detail}"
        )
        self.job_id = job_id
        self.current = current
        self.requested = requested


class InvalidCursor(ValueError):
    pass


class Lease(enum.StrEnum):
    """What a worker learns when it reports on a job it claimed."""

    owned = "owned"  # carry on
    # Stop between two steps, then transition(cancelled, worker_id=...).
    cancel_requested = "cancel_requested"
    # Not ours any more (recovered by the reconciler, finished, cancelled): stop, write nothing.
    lost = "lost"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": str(job_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(data["t"])
        job_id = uuid.UUID(data["i"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    if created_at.tzinfo is None:
        raise InvalidCursor("invalid cursor")
    return created_at, job_id


class OwnerRepository:
    def __init__(self, session: Session):
        self._session = session

    def get(self, owner_id: uuid.UUID) -> Owner | None:
        return self._session.get(Owner, owner_id)

    def get_by_name(self, name: str) -> Owner | None:
        return self._session.scalar(select(Owner).where(Owner.name == name))

    def create(self, name: str) -> Owner:
        owner = Owner(name=name)
        self._session.add(owner)
        self._session.flush()
        return owner

    def get_or_create(self, name: str) -> Owner:
        return self.get_by_name(name) or self.create(name)


class ApiKeyRepository:
    # Writing last_used_at on every request would turn each read into a write.
    TOUCH_INTERVAL = timedelta(minutes=1)

    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def create(
        self, owner: Owner, *, key_hash: str, prefix: str, name: str | None = None
    ) -> ApiKey:
        api_key = ApiKey(owner_id=owner.id, key_hash=key_hash, prefix=prefix, name=name)
        self._session.add(api_key)
        self._session.flush()
        return api_key

    def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return self._session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    def touch(self, api_key: ApiKey) -> bool:
        """Record use; answers whether anything was written (then the caller commits)."""
        now = self._clock()
        if api_key.last_used_at is not None and now - api_key.last_used_at < self.TOUCH_INTERVAL:
            return False
        api_key.last_used_at = now
        self._session.flush()
        return True

    def list_for_owner(self, owner_id: uuid.UUID) -> list[ApiKey]:
        return list(
            self._session.scalars(
                select(ApiKey).where(ApiKey.owner_id == owner_id).order_by(ApiKey.created_at)
            )
        )

    def revoke(self, prefix: str) -> int:
        result = self._session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            .values(revoked_at=self._clock())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0


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


class JobRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock
        self.events = JobEventRepository(session, clock)

    # --- creation and reads ------------------------------------------------------------------

    def create(
        self,
        *,
        owner_id: uuid.UUID,
        spec: dict[str, Any],
        spec_hash: str,
        queue: str = "gpu",
        max_attempts: int = 3,
        name: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Job:
        """A new `queued` job and its `created` event. Flushes: a duplicate idempotency key
        raises IntegrityError here."""
        now = self._clock()
        job = Job(
            id=uuid.uuid4(),
            owner_id=owner_id,
            spec=spec,
            spec_hash=spec_hash,
            queue=queue,
            max_attempts=max_attempts,
            name=name,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            status=JobStatus.queued.value,
            progress_step=0,
            attempt=0,
            cancel_requested=False,
            created_at=now,
            updated_at=now,
        )
        self._session.add(job)
        self._session.flush()
        self.events.add(job.id, EventKind.created, status=JobStatus.queued, message="job created")
        return job

    def get(self, job_id: uuid.UUID, *, owner_id: uuid.UUID | None = None) -> Job | None:
        """The job, or None; with `owner_id`, None also when someone else owns it."""
        job = self._session.get(Job, job_id, populate_existing=True)
        if job is None or (owner_id is not None and job.owner_id != owner_id):
            return None
        return job

    def get_by_idempotency_key(self, owner_id: uuid.UUID, key: str) -> Job | None:
        return self._session.scalar(
            select(Job).where(Job.owner_id == owner_id, Job.idempotency_key == key)
        )

    def list(
        self,
        owner_id: uuid.UUID,
        *,
        statuses: Iterable[JobStatus] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Job]:
        """Newest first, keyset-paginated on (created_at, id): stable under inserts."""
        query = select(Job).where(Job.owner_id == owner_id)
        if statuses:
            query = query.where(Job.status.in_([s.value for s in statuses]))
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(
                    Job.created_at < created_at,
                    and_(Job.created_at == created_at, Job.id < last_id),
                )
            )
        rows = list(
            self._session.scalars(
                query.order_by(Job.created_at.desc(), Job.id.desc())
                .limit(limit + 1)
                .execution_options(populate_existing=True)
            )
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return Page(rows, next_cursor)

    def count(self, owner_id: uuid.UUID, *, statuses: Iterable[JobStatus] | None = None) -> int:
        query = select(func.count()).select_from(Job).where(Job.owner_id == owner_id)
        if statuses:
            query = query.where(Job.status.in_([s.value for s in statuses]))
        return int(self._session.scalar(query) or 0)

    def count_by_status(self) -> dict[JobStatus, int]:
        """All owners together (the Prometheus gauge); every status present, zeros included."""
        counts = dict.fromkeys(JobStatus, 0)
        for status, n in self._session.execute(
            select(Job.status, func.count()).group_by(Job.status)
        ):
            counts[JobStatus(status)] = int(n)
        return counts

    # --- the worker's side -------------------------------------------------------------------

    def claim(
        self, job_id: uuid.UUID, worker_id: str, *, stale_after: timedelta | None = None
    ) -> Job | None:
        """Make `worker_id` the one worker running the job; None when it may not run it.

        Wins only from `queued`, or, with `stale_after`, from `running`/never-cancelled with a
        heartbeat older than that (its worker died; this is the retry from the last checkpoint).
        Refused when a cancel was requested or the attempts are used up. Two workers claiming
        at once: exactly one UPDATE matches. Commit right after.
        """
        now = self._clock()
        base = [
            Job.id == job_id,
            Job.cancel_requested.is_(False),
            Job.attempt < Job.max_attempts,
        ]
        candidates: list[tuple[Any, bool]] = [(Job.status == JobStatus.queued.value, False)]
        if stale_after is not None:
            candidates.append(
                (
                    and_(
                        Job.status == JobStatus.running.value,
                        or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < now - stale_after),
                    ),
                    True,
                )
            )
        for condition, recovered in candidates:
            result = self._session.execute(
                update(Job)
                .where(*base, condition)
                .values(
                    status=JobStatus.running.value,
                    worker_id=worker_id,
                    attempt=Job.attempt + 1,
                    heartbeat_at=now,
                    started_at=func.coalesce(Job.started_at, now),
                    updated_at=now,
                    error=None,
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                job = self.get(job_id)
                assert job is not None
                self.events.add(
                    job_id,
                    EventKind.status,
                    status=JobStatus.running,
                    message=f"claimed by {worker_id} (attempt {job.attempt}/{job.max_attempts})",
                    data={"worker_id": worker_id, "attempt": job.attempt, "recovered": recovered},
                )
                return job
        return None

    def heartbeat(self, job_id: uuid.UUID, worker_id: str) -> Lease:
        """Refresh the heartbeat of a claimed job and learn whether to go on."""
        return self._report(job_id, worker_id, {})

    def update_progress(
        self,
        job_id: uuid.UUID,
        worker_id: str,
        *,
        step: int,
        total: int | None,
        examples_per_s: float | None = None,
        eta_s: float | None = None,
    ) -> Lease:
        """Progress of the current stage (throttle on the caller's side); a heartbeat too."""
        return self._report(
            job_id,
            worker_id,
            {
                "progress_step": step,
                "progress_total": total,
                "examples_per_s": examples_per_s,
                "eta_s": eta_s,
            },
        )

    def set_stage(
        self, job_id: uuid.UUID, worker_id: str, stage: str, detail: str | None = None
    ) -> Lease:
        """A pipeline stage starts: progress resets and a `stage` event is recorded."""
        lease = self._report(
            job_id,
            worker_id,
            {"stage": stage, "progress_step": 0, "progress_total": None, "eta_s": None},
        )
        if lease is not Lease.lost:
            self.events.add(
                job_id,
                EventKind.stage,
                status=self._status_of(job_id),
                message=f"stage {stage}" + (f" ({detail})" if detail else ""),
                data={"stage": stage, "detail": detail},
            )
        return lease

    def _report(self, job_id: uuid.UUID, worker_id: str, values: dict[str, Any]) -> Lease:
        now = self._clock()
        row = self._session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.worker_id == worker_id,
                Job.status.in_([JobStatus.running.value, JobStatus.cancelling.value]),
            )
            .values(heartbeat_at=now, updated_at=now, **values)
            .returning(Job.cancel_requested)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return Lease.lost
        return Lease.cancel_requested if row[0] else Lease.owned

    def _status_of(self, job_id: uuid.UUID) -> JobStatus:
        status = self._session.scalar(select(Job.status).where(Job.id == job_id))
        if status is None:
            raise JobNotFound(job_id)
        return JobStatus(status)

    def transition(
        self,
        job_id: uuid.UUID,
        to: JobStatus,
        *,
        worker_id: str | None = None,
        expected: Iterable[JobStatus] | None = None,
        message: str | None = None,
        error: str | None = None,
        data: dict[str, Any] | None = None,
        heartbeat_before: datetime | None = None,
        refund_attempt: bool = False,
    ) -> Job:
        """Move the job to `to` if ALLOWED_TRANSITIONS permits it from its current status (and
        from one of `expected`, when given), recording a `status` event.

        With `worker_id`, only the worker that holds the claim may do it: a worker whose job was
        recovered by another one cannot overwrite that one's work. With `heartbeat_before`, only
        if the heartbeat is older than that (the reconciler's check). Raises InvalidTransition
        (the job changed under us or may not go there) or JobNotFound.

        `refund_attempt` (back to `queued` only): the attempt ended through no fault of the job
        (its worker shut down), so it does not count towards `max_attempts`.
        """
        if to is JobStatus.running:
            raise ValueError("a job becomes running only through claim()")
        allowed_from = {s for s, targets in ALLOWED_TRANSITIONS.items() if to in targets}
        if expected is not None:
            allowed_from &= set(expected)
        now = self._clock()
        values: dict[str, Any] = {"status": to.value, "updated_at": now}
        if to in TERMINAL_STATUSES:
            values.update(finished_at=now, eta_s=None)
        if to is JobStatus.failed:
            values["error"] = error or message or "failed"
        elif error is not None:
            values["error"] = error
        if to is JobStatus.cancelling:
            values["cancel_requested"] = True
        if to is JobStatus.queued:  # given back for a retry: nobody holds it now
            # ...and no message for it is on the broker until whoever gives it back sends one
            # (mark_enqueued): if that send fails, the reconciler's next pass sends it.
            values.update(worker_id=None, heartbeat_at=None, enqueued_at=None)
            if refund_attempt:
                values["attempt"] = Job.attempt - 1
        elif refund_attempt:
            raise ValueError("only a job given back to the queue gets its attempt back")

        # Read the current status, then update only if it is still that one: the event then
        # names the real `from`, and a concurrent change makes us re-read instead of clobbering.
        for _ in range(5):
            current = self._status_of(job_id)
            if current not in allowed_from:
                raise InvalidTransition(job_id, current, to)
            conditions = [Job.id == job_id, Job.status == current.value]
            if worker_id is not None:
                conditions.append(Job.worker_id == worker_id)
            if heartbeat_before is not None:
                conditions.append(
                    or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < heartbeat_before)
                )
            result = self._session.execute(
                update(Job)
                .where(*conditions)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:
                self.events.add(
                    job_id,
                    EventKind.status,
                    status=to,
                    message=message or f"{current.value} -> {to.value}",
                    data={"from": current.value, **(data or {})},
                )
                job = self.get(job_id)
                assert job is not None
                return job
            if (worker_id is not None or heartbeat_before is not None) and self._status_of(
                job_id
            ) == current:
                raise InvalidTransition(job_id, current, to, "not held by that worker or alive")
        raise InvalidTransition(job_id, self._status_of(job_id), to, "changed concurrently")

    def request_cancel(self, job_id: uuid.UUID) -> Job:
        """Cancel: `queued` becomes `cancelled` at once; `running` becomes `cancelling` (the
        worker sees Lease.cancel_requested and stops); `cancelling` stays. Finished jobs raise
        InvalidTransition."""
        for _ in range(5):
            current = self._status_of(job_id)
            try:
                if current is JobStatus.queued:
                    return self.transition(
                        job_id,
                        JobStatus.cancelled,
                        expected=[JobStatus.queued],
                        message="cancelled before it started",
                    )
                if current is JobStatus.running:
                    return self.transition(
                        job_id,
                        JobStatus.cancelling,
                        expected=[JobStatus.running],
                        message="cancel requested",
                    )
            except InvalidTransition:
                continue  # claimed or finished in between: look again
            if current is JobStatus.cancelling:
                job = self.get(job_id)
                assert job is not None
                return job
            raise InvalidTransition(job_id, current, JobStatus.cancelled, "the job has finished")
        raise InvalidTransition(job_id, self._status_of(job_id), JobStatus.cancelled)

    # --- the reconciler's side ---------------------------------------------------------------

    def mark_enqueued(self, job_id: uuid.UUID) -> None:
        self._session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(enqueued_at=self._clock())
            .execution_options(synchronize_session=False)
        )

    def find_queued_for_enqueue(self, *, not_sent_for: timedelta, limit: int = 100) -> list[Job]:
        """Queued jobs never sent to the broker, or sent longer ago than `not_sent_for`
        (the broker may have lost them): the reconciler sends them (again)."""
        cutoff = self._clock() - not_sent_for
        return list(
            self._session.scalars(
                select(Job)
                .where(
                    Job.status == JobStatus.queued.value,
                    or_(Job.enqueued_at.is_(None), Job.enqueued_at < cutoff),
                )
                .order_by(Job.created_at)
                .limit(limit)
            )
        )

    def find_stale(self, *, stale_after: timedelta, limit: int = 100) -> list[Job]:
        """Running or cancelling jobs whose worker stopped sending heartbeats."""
        cutoff = self._clock() - stale_after
        return list(
            self._session.scalars(
                select(Job)
                .where(
                    Job.status.in_([JobStatus.running.value, JobStatus.cancelling.value]),
                    or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
                )
                .order_by(Job.heartbeat_at)
                .limit(limit)
            )
        )

    def recover_stale(self, job_id: uuid.UUID, *, stale_after: timedelta) -> Job | None:
        """A job whose worker died: `running` goes back to `queued` while attempts remain (the
        caller re-enqueues it; the next claim resumes from the checkpoint), else `failed`;
        `cancelling` becomes `cancelled`. None if the heartbeat is fresh again (it was not dead).
        """
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        cutoff = self._clock() - stale_after
        if job.heartbeat_at is not None and job.heartbeat_at >= cutoff:
            return None
        worker = job.worker_id or "?"
        common: dict[str, Any] = {"worker_id": job.worker_id, "heartbeat_before": cutoff}
        try:
            if job.job_status is JobStatus.cancelling:
                return self.transition(
                    job_id,
                    JobStatus.cancelled,
                    message=f"worker {worker} stopped answering while cancelling",
                    **common,
                )
            if job.job_status is not JobStatus.running:
                return None
            if job.attempt >= job.max_attempts:
                return self.transition(
                    job_id,
                    JobStatus.failed,
                    error=(
                        f"worker {worker} stopped answering; "
                        f"{job.attempt} of {job.max_attempts} attempts used"
                    ),
                    **common,
                )
            return self.transition(
                job_id,
                JobStatus.queued,
                message=f"worker {worker} stopped answering; will retry",
                data={"attempt": job.attempt},
                **common,
            )
        except InvalidTransition:
            return None  # another worker or the API got there first


class MetricRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def add(
        self,
        job_id: uuid.UUID,
        *,
        stage: str,
        step: int,
        payload: dict[str, Any],
        seed: int | None = None,
        sparsity: float | None = None,
        selected: bool = False,
    ) -> Metric:
        metric = Metric(
            job_id=job_id,
            at=self._clock(),
            stage=stage,
            step=step,
            seed=seed,
            sparsity=sparsity,
            payload=payload,
            selected=selected,
        )
        self._session.add(metric)
        self._session.flush()
        if selected:
            self.select(metric.id)
        return metric

    def select(self, metric_id: int) -> Metric:
        """Mark one point as the selected one of its (job, stage, seed, sparsity) curve."""
        metric = self._session.get(Metric, metric_id)
        if metric is None:
            raise LookupError(f"metric {metric_id} does not exist")
        same_curve = [
            Metric.job_id == metric.job_id,
            Metric.stage == metric.stage,
            Metric.seed.is_(None) if metric.seed is None else Metric.seed == metric.seed,
            Metric.sparsity.is_(None)
            if metric.sparsity is None
            else Metric.sparsity == metric.sparsity,
        ]
        self._session.execute(
            update(Metric)
            .where(*same_curve, Metric.id != metric_id)
            .values(selected=False)
            .execution_options(synchronize_session="fetch")
        )
        metric.selected = True
        self._session.flush()
        return metric

    def list(self, job_id: uuid.UUID, *, limit: int = 20_000) -> list[Metric]:
        return list(
            self._session.scalars(
                select(Metric).where(Metric.job_id == job_id).order_by(Metric.id).limit(limit)
            )
        )


class ArtifactRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def add(
        self,
        job_id: uuid.UUID,
        *,
        kind: ArtifactKind,
        name: str,
        size: int,
        sha256: str,
        storage_key: str | None = None,
        data: bytes | None = None,
        content_type: str = "application/octet-stream",
        seed: int | None = None,
        sparsity: float | None = None,
        artifact_id: uuid.UUID | None = None,
    ) -> Artifact:
        """Record a stored artifact (give `storage_key` from the ArtifactStore) or an inline one
        (`data`, for bit-packed masks). Records an `artifact` event."""
        if (storage_key is None) == (data is None):
            raise ValueError("give exactly one of storage_key or data")
        if data is not None and len(data) != size:
            raise ValueError("size does not match the inline data")
        artifact = Artifact(
            id=artifact_id or uuid.uuid4(),
            job_id=job_id,
            kind=kind.value,
            name=name,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            data=data,
            content_type=content_type,
            seed=seed,
            sparsity=sparsity,
            created_at=self._clock(),
        )
        self._session.add(artifact)
        self._session.flush()
        JobEventRepository(self._session, self._clock).add(
            job_id,
            EventKind.artifact,
            message=f"{kind.value} {name} stored",
            data={"artifact_id": str(artifact.id), "kind": kind.value, "name": name},
        )
        return artifact

    def list(self, job_id: uuid.UUID) -> Sequence[Artifact]:
        # Inline bytes are not needed for a listing.
        return list(
            self._session.scalars(
                select(Artifact)
                .options(defer(Artifact.data))
                .where(Artifact.job_id == job_id)
                .order_by(Artifact.created_at, Artifact.name)
            )
        )

    def get(self, job_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact | None:
        return self._session.scalar(
            select(Artifact)
            .options(defer(Artifact.data))
            .where(Artifact.id == artifact_id, Artifact.job_id == job_id)
        )

    def read_inline(self, artifact_id: uuid.UUID) -> bytes | None:
        return self._session.scalar(select(Artifact.data).where(Artifact.id == artifact_id))
