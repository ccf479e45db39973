"""Jobs: creation and reads (the API), claims, heartbeats, progress and status changes (the
worker), and what the reconciler looks for. Every state change is a conditional UPDATE."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from persistence.repositories.base import Clock, SubmittedRepository
from persistence.repositories.events import JobEventRepository
from persistence.repositories.pagination import Page
from persistence.tables import TERMINAL_STATUSES, EventKind, Job, JobStatus, utcnow

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


class Lease(enum.StrEnum):
    """What a worker learns when it reports on a job it claimed."""

    owned = "owned"  # carry on
    # Stop between two steps, then transition(cancelled, worker_id=...).
    cancel_requested = "cancel_requested"
    # Not ours any more (recovered by the reconciler, finished, cancelled): stop, write nothing.
    lost = "lost"


@dataclass(frozen=True)
class StatusChange:
    """One status change of a job: where it goes, and what it writes and records on the way."""

    to: JobStatus
    message: str | None = None
    error: str | None = None
    data: dict[str, Any] | None = None
    # Back to `queued` only: the attempt ended through no fault of the job (its worker shut
    # down), so it does not count towards `max_attempts`.
    refund_attempt: bool = False

    def __post_init__(self) -> None:
        if self.to is JobStatus.running:
            raise ValueError("a job becomes running only through claim()")
        if self.refund_attempt and self.to is not JobStatus.queued:
            raise ValueError("only a job given back to the queue gets its attempt back")

    def allowed_from(self, expected: Iterable[JobStatus] | None = None) -> set[JobStatus]:
        allowed = {s for s, targets in ALLOWED_TRANSITIONS.items() if self.to in targets}
        return allowed if expected is None else allowed & set(expected)

    def values(self, now: datetime) -> dict[str, Any]:
        """The columns the change sets."""
        values: dict[str, Any] = {"status": self.to.value, "updated_at": now}
        if self.to in TERMINAL_STATUSES:
            values.update(finished_at=now, eta_s=None, job_eta_s=None, phase=None)
            if self.to is JobStatus.succeeded:
                values["job_fraction"] = 1.0
        if self.to is JobStatus.failed:
            values["error"] = self.error or self.message or "failed"
        elif self.error is not None:
            values["error"] = self.error
        if self.to is JobStatus.cancelling:
            values["cancel_requested"] = True
        if self.to is JobStatus.queued:  # given back for a retry: nobody holds it now
            # ...and no message for it is on the broker until whoever gives it back sends one
            # (mark_enqueued): if that send fails, the reconciler's next pass sends it.
            values.update(worker_id=None, heartbeat_at=None, enqueued_at=None)
            if self.refund_attempt:
                values["attempt"] = Job.attempt - 1
        return values

    def event_message(self, current: JobStatus) -> str:
        return self.message or f"{current.value} -> {self.to.value}"

    def event_data(self, current: JobStatus) -> dict[str, Any]:
        return {"from": current.value, **(self.data or {})}


@dataclass(frozen=True)
class ClaimCheck:
    """Who may make a change: with `worker_id`, only the worker holding the claim; with
    `heartbeat_before`, only while the heartbeat is older than that (the reconciler)."""

    worker_id: str | None = None
    heartbeat_before: datetime | None = None

    @property
    def restricted(self) -> bool:
        return self.worker_id is not None or self.heartbeat_before is not None

    def conditions(self) -> list[Any]:
        conditions: list[Any] = []
        if self.worker_id is not None:
            conditions.append(Job.worker_id == self.worker_id)
        if self.heartbeat_before is not None:
            conditions.append(
                or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < self.heartbeat_before)
            )
        return conditions


def _in_statuses(statuses: Iterable[JobStatus] | None) -> list[Any]:
    """The WHERE condition "status is one of these" (none: any status)."""
    return [Job.status.in_([s.value for s in statuses])] if statuses else []


class JobRepository(SubmittedRepository[Job]):
    table = Job
    refresh_reads = True  # a job's status moves under the session (workers, the reconciler)

    def __init__(self, session: Session, clock: Clock = utcnow):
        super().__init__(session, clock)
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
        study_id: uuid.UUID | None = None,
        study_key: str | None = None,
    ) -> Job:
        """A new `queued` job and its `created` event (a study's child names its study and its
        key). Flushes: a duplicate idempotency key raises IntegrityError here."""
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
            study_id=study_id,
            study_key=study_key,
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

    def list(
        self,
        owner_id: uuid.UUID,
        *,
        statuses: Iterable[JobStatus] | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> Page[Job]:
        """Newest first, keyset-paginated on (created_at, id): stable under inserts."""
        return self.page(
            self.owned(owner_id).where(*_in_statuses(statuses)), limit=limit, cursor=cursor
        )

    def count(self, owner_id: uuid.UUID, *, statuses: Iterable[JobStatus] | None = None) -> int:
        return self.count_owned(owner_id, *_in_statuses(statuses))

    def count_by_status(self) -> dict[JobStatus, int]:
        """All owners together (the Prometheus gauge); every status present, zeros included."""
        counts = dict.fromkeys(JobStatus, 0)
        for status, n in self._session.execute(
            select(Job.status, func.count()).group_by(Job.status)
        ):
            counts[JobStatus(status)] = int(n)
        return counts

    def count_in_queues(self, queues: Iterable[str], statuses: Iterable[JobStatus]) -> int:
        """All owners' jobs in these queues and statuses (the Slurm autoscaler's demand)."""
        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.queue.in_(list(queues)), Job.status.in_([s.value for s in statuses]))
        )
        return int(self._session.scalar(query) or 0)

    def training_speeds(self, queue: str, model: str, *, limit: int = 20) -> list[float]:
        """Training examples per second of the newest succeeded jobs of all owners on `queue`
        with `model` (the trainer's measure, as each job last reported it), newest first: the
        service's own measurement the web form's preset estimates use."""
        rows = self._session.execute(
            select(Job.examples_per_s, Job.spec)
            .where(
                Job.queue == queue,
                Job.status == JobStatus.succeeded.value,
                Job.examples_per_s.is_not(None),
                Job.examples_per_s > 0,
            )
            .order_by(Job.finished_at.desc())
            .limit(limit * 5)
        )
        same = [
            float(speed)
            for speed, spec in rows
            if isinstance(spec, dict) and (spec.get("model") or {}).get("name_or_path") == model
        ]
        return same[:limit]

    _UNSET: Any = object()

    def annotate(self, job_id: uuid.UUID, *, tags: Any = _UNSET, note: Any = _UNSET) -> Job:
        """Set the lab's own tags (a list of strings, None: none) and/or note on a job; only
        those columns are written, so a worker's concurrent progress is never overwritten."""
        values: dict[str, Any] = {}
        if tags is not self._UNSET:
            values["tags"] = list(tags) if tags else None
        if note is not self._UNSET:
            values["note"] = note or None
        if values:
            values["updated_at"] = self._clock()
            self._session.execute(update(Job).where(Job.id == job_id).values(**values))
            self._session.flush()
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

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
        job_fraction: float | None = None,
        job_eta_s: float | None = None,
        phase: str | None = None,
    ) -> Lease:
        """Progress of the current stage and of the whole job (throttle on the caller's
        side); a heartbeat too."""
        values: dict[str, Any] = {
            "progress_step": step,
            "progress_total": total,
            "examples_per_s": examples_per_s,
            "eta_s": eta_s,
            "phase": phase,
        }
        if job_fraction is not None:  # unknown (a stage before the data is read): keep it
            values.update(job_fraction=job_fraction, job_eta_s=job_eta_s)
        return self._report(job_id, worker_id, values)

    def set_stage(
        self, job_id: uuid.UUID, worker_id: str, stage: str, detail: str | None = None
    ) -> Lease:
        """A pipeline stage starts: progress resets and a `stage` event is recorded."""
        lease = self._report(
            job_id,
            worker_id,
            {
                "stage": stage,
                "progress_step": 0,
                "progress_total": None,
                "eta_s": None,
                "phase": None,
            },
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
        change = StatusChange(to, message=message, error=error, data=data,
                              refund_attempt=refund_attempt)  # fmt: skip
        return self.apply(job_id, change, ClaimCheck(worker_id, heartbeat_before), expected)

    def apply(
        self,
        job_id: uuid.UUID,
        change: StatusChange,
        check: ClaimCheck | None = None,
        expected: Iterable[JobStatus] | None = None,
    ) -> Job:
        """`transition` with the change and the claim check as values."""
        check = check or ClaimCheck()
        allowed_from = change.allowed_from(expected)
        values = change.values(self._clock())
        # Read the current status, then update only if it is still that one: the event then
        # names the real `from`, and a concurrent change makes us re-read instead of clobbering.
        for _ in range(5):
            current = self._status_of(job_id)
            if current not in allowed_from:
                raise InvalidTransition(job_id, current, change.to)
            if self._update_from(job_id, current, check, values):
                self.events.add(job_id, EventKind.status, status=change.to,
                                message=change.event_message(current),
                                data=change.event_data(current))  # fmt: skip
                job = self.get(job_id)
                assert job is not None
                return job
            if check.restricted and self._status_of(job_id) == current:
                raise InvalidTransition(
                    job_id, current, change.to, "not held by that worker or alive"
                )
        raise InvalidTransition(job_id, self._status_of(job_id), change.to, "changed concurrently")

    def _update_from(
        self, job_id: uuid.UUID, current: JobStatus, check: ClaimCheck, values: dict[str, Any]
    ) -> bool:
        """The conditional UPDATE: only while the job is `current` and `check` holds."""
        result = self._session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == current.value, *check.conditions())
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

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
        """The job's message is on the broker: sent, so dispatched too (persistence.dispatch)."""
        now = self._clock()
        self._session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(enqueued_at=now, dispatched_at=func.coalesce(Job.dispatched_at, now))
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
