"""How far a study is (issue 19 item 7): its children done, the running ones' own progress,
the time since the first child started, and an ETA from the children's ETAs.

The ETA is an estimate: what the running children still need (their own `job_eta_s`) plus,
for each child still queued, the mean duration of the children that finished (or, before any
has, what the running ones are projected to take), shared by as many workers as there are
children running now. Unknown (None) until some child has run long enough to tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from persistence.tables import Job, JobStatus

TERMINAL = (JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled)


class StudyProgress(BaseModel):
    done: int = Field(description="Children finished (succeeded, failed or cancelled)")
    running: int = Field(description="Children running now")
    total: int = Field(description="Children")
    fraction: float = Field(
        description="Of the whole study: finished children count whole, running ones by their "
        "own progress (0-1)"
    )
    elapsed_s: float | None = Field(
        description="Since the first child started (until the last finished); null before"
    )
    eta_s: float | None = Field(
        description="Seconds left, estimated from the children's ETAs and durations; null when "
        "nothing tells yet (0 once every child finished)"
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def study_progress(children: Sequence[Job], now: datetime | None = None) -> StudyProgress:
    now = now or datetime.now(UTC)
    total = len(children)
    done = [j for j in children if j.job_status in TERMINAL]
    running = [j for j in children if j.job_status in (JobStatus.running, JobStatus.cancelling)]
    queued = total - len(done) - len(running)
    partial = sum(min(1.0, max(0.0, j.job_fraction or 0.0)) for j in running)
    fraction = (len(done) + partial) / total if total else 0.0

    starts = [s for s in (_utc(j.started_at) for j in children) if s is not None]
    elapsed = None
    if starts:
        finished = [f for f in (_utc(j.finished_at) for j in done) if f is not None]
        end = max(finished) if len(done) == total and finished else now
        elapsed = max(0.0, (end - min(starts)).total_seconds())

    eta = _eta(done, running, queued, now)
    return StudyProgress(done=len(done), running=len(running), total=total,
                         fraction=round(fraction, 4), elapsed_s=elapsed, eta_s=eta)  # fmt: skip


def _eta(done: Sequence[Job], running: Sequence[Job], queued: int, now: datetime) -> float | None:
    if not running and not queued:
        return 0.0
    durations = [
        (f - s).total_seconds()
        for j in done
        if j.job_status is JobStatus.succeeded
        and (s := _utc(j.started_at)) is not None
        and (f := _utc(j.finished_at)) is not None
    ]
    if not durations:  # none finished yet: what the running ones are projected to take
        for j in running:
            start = _utc(j.started_at)
            if start is not None and j.job_fraction and j.job_fraction > 0.02:
                durations.append((now - start).total_seconds() / j.job_fraction)
    running_left = [j.job_eta_s for j in running]
    if any(left is None for left in running_left) or (queued and not durations):
        return None
    per_child = sum(durations) / len(durations) if durations else 0.0
    left = [float(x) for x in running_left if x is not None]
    workers = max(1, len(running))
    # The work left shared by the workers busy now, never less than the longest running child.
    shared = (sum(left) + queued * per_child) / workers
    return round(max(shared, max(left, default=0.0)), 1)
