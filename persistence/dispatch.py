"""Fair shares: the database decides which queued job goes to the workers next, not the
broker's first-come order.

A queued job waits in the database until the dispatcher sets its `dispatched_at`; only then is
it sent to the broker. Per queue at most `SRNET_DISPATCH_AHEAD` jobs are handed out and not
yet claimed, so the broker never holds a backlog whose order would decide who runs next. Each
time a slot frees (a submission, a worker's claim, a job's end, every reconciler pass) the
dispatcher hands out the next jobs: among the owners with waiting jobs, the one with the fewest
jobs running or handed out goes first (ties: the owner whose oldest waiting job is oldest), and
an owner at its running limit waits. With one worker serving two owners, a single job of owner
B therefore starts after at most one more of owner A's jobs, however many A queued. A study's
jobs are ordinary jobs of its owner and count as such.

Per-owner limits (queued jobs, running jobs, studies) come from the owner's row (an admin sets
them) or else the service's settings; 0 is "no limit". A submission past a limit raises
`OwnerLimitReached` before anything is stored.

Several dispatchers may run at once (the API, every worker, reconcilers on several hosts): the
choice is made under a lock the database holds for the transaction (an advisory lock on
PostgreSQL, the write lock on SQLite), so the limits hold; a job is sent only after the commit
that marks it (enqueue after commit), and a send the broker refused is the reconciler's to
retry (the job is dispatched but has no `enqueued_at`).
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import and_, false, func, or_, select, text, update
from sqlalchemy.orm import Session

from persistence.repositories.base import Clock
from persistence.tables import TERMINAL_STATUSES, Job, JobStatus, Owner, utcnow

log = logging.getLogger(__name__)

# pg_advisory_xact_lock keys (any fixed 64-bit numbers; ours only).
_DISPATCH_LOCK = 0x5352_4E45_5444_0001
_SUBMIT_LOCK = 0x5352_4E45_5444_0002

# Waiting jobs read per queue and pass (a lab's backlog is far smaller; the queued limit bounds it).
WAITING_SCAN_LIMIT = 10_000

_ACTIVE = (JobStatus.running.value, JobStatus.cancelling.value)


class _Limits(Protocol):
    max_running_per_owner: int
    max_queued_per_owner: int
    max_studies_per_owner: int
    dispatch_ahead: int


@dataclass(frozen=True)
class DispatchPolicy:
    """What the dispatcher obeys: the default running limit per owner (0: none; an owner's own
    limit wins) and how many handed-out, unclaimed jobs a queue may hold."""

    max_running_per_owner: int = 0
    ahead: int = 1

    def __post_init__(self) -> None:
        if self.max_running_per_owner < 0:
            raise ValueError("max_running_per_owner must be >= 0 (0: no limit)")
        if self.ahead < 1:
            raise ValueError("ahead must be >= 1")

    @classmethod
    def from_settings(cls, settings: _Limits) -> DispatchPolicy:
        return cls(
            max_running_per_owner=settings.max_running_per_owner, ahead=settings.dispatch_ahead
        )


@dataclass(frozen=True)
class OwnerLimits:
    """One owner's limits in force (0: no limit)."""

    queued: int
    running: int
    studies: int

    @classmethod
    def of(cls, owner: Owner | None, settings: _Limits) -> OwnerLimits:
        def pick(own: int | None, default: int) -> int:
            return default if own is None else own

        if owner is None:
            return cls(
                settings.max_queued_per_owner,
                settings.max_running_per_owner,
                settings.max_studies_per_owner,
            )
        return cls(
            queued=pick(owner.max_queued_jobs, settings.max_queued_per_owner),
            running=pick(owner.max_running_jobs, settings.max_running_per_owner),
            studies=pick(owner.max_studies, settings.max_studies_per_owner),
        )


class OwnerLimitReached(Exception):
    """A submission would take an owner past one of its limits; nothing was stored."""

    def __init__(self, limit: str, value: int, current: int, adding: int):
        self.limit = limit  # "queued jobs" | "studies"
        self.value = value
        self.current = current
        self.adding = adding
        super().__init__(
            f"limit of {value} {limit} per owner reached: you have {current}, "
            f"this request adds {adding}"
        )


def serialize_writers(session: Session, key: int = _DISPATCH_LOCK) -> None:
    """Hold, until the transaction ends, a lock every other caller with `key` waits for:
    counts read after it stay true until the commit. PostgreSQL: a transaction advisory lock;
    SQLite: the database's write lock (an UPDATE that changes nothing takes it)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    elif dialect == "sqlite":
        session.execute(update(Job).where(false()).values(status=Job.status))
    else:  # pragma: no cover - the service runs on these two only
        raise RuntimeError(f"no dispatch lock for database {dialect!r}")


# --- counts --------------------------------------------------------------------------------


def _handed_condition() -> object:
    """Running, or handed to the workers and not yet claimed."""
    return or_(
        Job.status.in_(_ACTIVE),
        and_(Job.status == JobStatus.queued.value, Job.dispatched_at.is_not(None)),
    )


def active_counts(
    session: Session, owners: Iterable[uuid.UUID] | None = None
) -> dict[uuid.UUID, int]:
    """Jobs per owner running or handed to the workers (every queue)."""
    query = select(Job.owner_id, func.count()).where(_handed_condition()).group_by(Job.owner_id)
    if owners is not None:
        query = query.where(Job.owner_id.in_(list(owners)))
    return {owner: int(n) for owner, n in session.execute(query)}


def handed_waiting(session: Session, queue: str) -> list[Job]:
    """Jobs of `queue` handed to the broker and not yet claimed, in the order they were sent."""
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.queue == queue,
                Job.status == JobStatus.queued.value,
                Job.dispatched_at.is_not(None),
            )
            .order_by(func.coalesce(Job.enqueued_at, Job.dispatched_at), Job.created_at)
        )
    )


@dataclass(frozen=True)
class _Waiting:
    id: uuid.UUID
    owner_id: uuid.UUID
    created_at: datetime


def _waiting(session: Session, queue: str) -> list[_Waiting]:
    rows = session.execute(
        select(Job.id, Job.owner_id, Job.created_at)
        .where(
            Job.queue == queue,
            Job.status == JobStatus.queued.value,
            Job.dispatched_at.is_(None),
            Job.cancel_requested.is_(False),
        )
        .order_by(Job.created_at, Job.id)
        .limit(WAITING_SCAN_LIMIT)
    )
    return [_Waiting(*row) for row in rows]


def _running_caps(
    session: Session, owners: Iterable[uuid.UUID], policy: DispatchPolicy
) -> dict[uuid.UUID, int]:
    caps = dict.fromkeys(owners, policy.max_running_per_owner)
    if caps:
        for owner_id, own in session.execute(
            select(Owner.id, Owner.max_running_jobs).where(
                Owner.id.in_(list(caps)), Owner.max_running_jobs.is_not(None)
            )
        ):
            caps[owner_id] = int(own)
    return caps


def fair_order(
    waiting: Iterable[_Waiting],
    active: Mapping[uuid.UUID, int],
    caps: Mapping[uuid.UUID, int] | None = None,
    count: int | None = None,
) -> list[_Waiting]:
    """The order the dispatcher hands out `waiting` jobs (oldest first within an owner): next
    is always the owner with the fewest jobs running or handed out, ties to the owner whose
    next job is oldest. With `caps`, an owner at its cap (0: none) gets no more; `count`
    stops after that many."""
    per_owner: dict[uuid.UUID, deque[_Waiting]] = defaultdict(deque)
    for job in waiting:
        per_owner[job.owner_id].append(job)
    handed = {owner: active.get(owner, 0) for owner in per_owner}
    heap = [(handed[o], jobs[0].created_at, str(o), o) for o, jobs in per_owner.items()]
    heapq.heapify(heap)
    order: list[_Waiting] = []
    while heap and (count is None or len(order) < count):
        _, _, _, owner = heapq.heappop(heap)
        cap = caps.get(owner, 0) if caps is not None else 0
        if cap and handed[owner] >= cap:
            continue  # at its running limit: waits until one of its jobs ends
        jobs = per_owner[owner]
        order.append(jobs.popleft())
        handed[owner] += 1
        if jobs:
            heapq.heappush(heap, (handed[owner], jobs[0].created_at, str(owner), owner))
    return order


# --- dispatching -----------------------------------------------------------------------------


def choose_jobs(
    session: Session,
    policy: DispatchPolicy,
    queues: Iterable[str] | None = None,
    clock: Clock = utcnow,
) -> list[Job]:
    """Mark the jobs that may go to the workers now (`dispatched_at`) and answer them in the
    order to send. Flushes; the caller commits, then sends."""
    serialize_writers(session)
    if queues is None:
        queues = list(
            session.scalars(
                select(Job.queue)
                .where(Job.status == JobStatus.queued.value, Job.dispatched_at.is_(None))
                .distinct()
            )
        )
    now = clock()
    chosen: list[Job] = []
    active: dict[uuid.UUID, int] | None = None
    for queue in sorted(queues):
        free = policy.ahead - len(handed_waiting(session, queue))
        if free <= 0:
            continue
        waiting = _waiting(session, queue)
        if not waiting:
            continue
        owners = {job.owner_id for job in waiting}
        if active is None:
            active = active_counts(session)
        caps = _running_caps(session, owners, policy)
        for pick in fair_order(waiting, active, caps, count=free):
            marked = session.execute(
                update(Job)
                .where(
                    Job.id == pick.id,
                    Job.status == JobStatus.queued.value,
                    Job.dispatched_at.is_(None),
                )
                .values(dispatched_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if marked.rowcount == 1:
                active[pick.owner_id] = active.get(pick.owner_id, 0) + 1
                job = session.get(Job, pick.id, populate_existing=True)
                assert job is not None
                chosen.append(job)
    session.flush()
    return chosen


class _Sender(Protocol):
    def send(self, job_id: uuid.UUID, queue: str) -> None: ...


def send_dispatched(
    session: Session, jobs: Iterable[Job], sender: _Sender, clock: Clock = utcnow
) -> list[uuid.UUID]:
    """Send committed, dispatched jobs in order and record the sends (commits). A job the
    broker refuses stays dispatched without `enqueued_at`: the reconciler sends it."""
    sent: list[uuid.UUID] = []
    for job in jobs:
        try:
            sender.send(job.id, job.queue)
        except Exception:
            log.warning(
                "broker did not take job %s; the reconciler will resend it", job.id, exc_info=True
            )
            break
        sent.append(job.id)
    if sent:
        session.execute(
            update(Job)
            .where(Job.id.in_(sent))
            .values(enqueued_at=clock())
            .execution_options(synchronize_session=False)
        )
        session.commit()
    return sent


def dispatch(
    session: Session, sender: _Sender, policy: DispatchPolicy, clock: Clock = utcnow
) -> list[uuid.UUID]:
    """One dispatch in `session` (nothing else pending in it): choose, commit, send. Answers
    the jobs sent."""
    chosen = choose_jobs(session, policy, clock=clock)
    session.commit()
    return send_dispatched(session, chosen, sender, clock)


def startable_queued(session: Session, queues: Iterable[str], policy: DispatchPolicy) -> int:
    """Queued jobs of these queues that could start without any job ending: those handed out,
    plus per owner its waiting jobs up to its running limit. A worker started for a job of an
    owner at its limit would only sit idle (the Slurm autoscaler's demand)."""
    queues = list(queues)
    waiting_by_owner: dict[uuid.UUID, int] = defaultdict(int)
    handed = 0
    for queue in queues:
        handed += len(handed_waiting(session, queue))
        for job in _waiting(session, queue):
            waiting_by_owner[job.owner_id] += 1
    if not waiting_by_owner:
        return handed
    active = active_counts(session, waiting_by_owner)
    caps = _running_caps(session, waiting_by_owner, policy)
    startable = 0
    for owner, waiting in waiting_by_owner.items():
        cap = caps[owner]
        startable += waiting if not cap else max(0, min(waiting, cap - active.get(owner, 0)))
    return handed + startable


# --- limits at submission --------------------------------------------------------------------


def check_submission(
    session: Session, owner: Owner, settings: _Limits, *, jobs: int, studies: int = 0
) -> None:
    """Raise OwnerLimitReached if adding `jobs` queued jobs (and `studies` studies) takes the
    owner past a limit. Holds a lock until the caller's commit so that two submissions of one
    owner cannot both pass on the same count."""
    limits = OwnerLimits.of(owner, settings)
    if not (limits.queued or limits.studies):
        return
    serialize_writers(session, _SUBMIT_LOCK)
    if limits.queued:
        queued = int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.owner_id == owner.id, Job.status == JobStatus.queued.value)
            )
            or 0
        )
        if queued + jobs > limits.queued:
            raise OwnerLimitReached("queued jobs", limits.queued, queued, jobs)
    if limits.studies and studies:
        open_studies = int(
            session.scalar(
                select(func.count(func.distinct(Job.study_id))).where(
                    Job.owner_id == owner.id,
                    Job.study_id.is_not(None),
                    Job.status.not_in([s.value for s in TERMINAL_STATUSES]),
                )
            )
            or 0
        )
        if open_studies + studies > limits.studies:
            raise OwnerLimitReached("studies", limits.studies, open_studies, studies)


# --- where a job stands ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueuePlace:
    """A queued job's place: 1 is the next job of its queue to start; `waiting_reason` says
    in words why it has not started."""

    position: int
    reason: str


def queue_place(session: Session, job: Job, policy: DispatchPolicy) -> QueuePlace | None:
    """Where a queued job stands (None for a job that is not queued). Handed-out jobs come
    first, in the order sent; then the waiting ones in the dispatcher's order, assuming no job
    ends meanwhile (an owner at its limit is placed as if it were not)."""
    if job.job_status is not JobStatus.queued:
        return None
    handed = handed_waiting(session, job.queue)
    if job.dispatched_at is not None:
        ids = [j.id for j in handed]
        position = ids.index(job.id) + 1 if job.id in ids else 1
        ahead = position - 1
        return QueuePlace(
            position,
            "handed to the workers; starts when a worker is free"
            + (f" ({ahead} job(s) ahead of it)" if ahead else ""),
        )
    waiting = _waiting(session, job.queue)
    active = active_counts(session)
    order = [w.id for w in fair_order(waiting, active)]
    rank = order.index(job.id) if job.id in order else len(order)
    position = len(handed) + rank + 1
    cap = _running_caps(session, [job.owner_id], policy)[job.owner_id]
    mine = active.get(job.owner_id, 0)
    if cap and mine >= cap:
        running = int(
            session.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.owner_id == job.owner_id, Job.status.in_(_ACTIVE))
            )
            or 0
        )
        what = "are running" if running == mine else "are running or handed to the workers"
        return QueuePlace(position, f"{mine} of your jobs {what}; limit {cap}")
    ahead = position - 1
    if ahead == 0:
        return QueuePlace(position, "next to start when a worker is free")
    return QueuePlace(
        position, f"waiting for a free worker: {ahead} job(s) ahead of it (owners take turns)"
    )
