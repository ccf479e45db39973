"""The reconciler: the database is the source of truth, the broker only a delivery mechanism.

Each pass
1. recovers `running` jobs whose heartbeat stopped (their worker died): back to `queued` and
   sent again while attempts remain (the next attempt resumes from the checkpoints), else
   `failed` with the reason; `cancelling` ones become `cancelled`; the work folder of a job
   it ends that way is removed where this host can see it (WORK_DIR/jobs/<id>, unless an
   attempt still holds its lock or SRNET_KEEP_WORK_DIR is set; worker.workdir);
2. sends `queued` jobs the broker does not have: never sent (the broker was down when the API
   committed them), or sent longer ago than RECONCILE_RESEND_AFTER_S and no longer held by the
   broker (Redis restarted and kept nothing), by job id: neither waiting in the queue nor
   fetched by a worker and unacknowledged (persistence.broker.CeleryJobSender.pending_jobs).
   Only those are sent, oldest send first; a backlog that merely waits is left alone. A queued
   job the dispatcher has not let go yet (no `dispatched_at`) is not "never sent": it waits;
3. dispatches: hands out the jobs that may run now (persistence.dispatch: owners take turns,
   per-owner limits), so a slot freed without a worker noticing (a queued job cancelled while
   handed out, a dispatch that failed) is filled within a pass.

Safe to run on several hosts at once: every state change is a conditional UPDATE, and a job
sent twice is claimed once (the second message finds it taken and is dropped).
Runs inside `srnet serve` and as `srnet reconcile` in deployments.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from persistence.broker import JobSender
from persistence.db import Database
from persistence.dispatch import DispatchPolicy, dispatch
from persistence.repositories import JobRepository
from persistence.settings import WorkerSettings
from persistence.tables import Job, JobStatus, utcnow

log = logging.getLogger(__name__)

# Queued jobs looked at per pass (a lab's backlog is far smaller).
QUEUED_SCAN_LIMIT = 10_000
# A job the API committed but has not marked as sent yet is left alone this long.
NEVER_SENT_GRACE = timedelta(seconds=10)


@dataclass
class ReconcileReport:
    recovered: list[uuid.UUID] = field(default_factory=list)  # running → queued, sent again
    failed: list[uuid.UUID] = field(default_factory=list)  # attempts used up
    cancelled: list[uuid.UUID] = field(default_factory=list)  # died while cancelling
    resent: list[uuid.UUID] = field(default_factory=list)  # queued, the broker lost them
    cleaned: list[uuid.UUID] = field(default_factory=list)  # failed/cancelled: folder removed
    dispatched: list[uuid.UUID] = field(default_factory=list)  # handed out by this pass
    send_errors: int = 0

    def __bool__(self) -> bool:
        return bool(self.recovered or self.failed or self.cancelled or self.resent
                    or self.dispatched or self.send_errors)  # fmt: skip


class Reconciler:
    def __init__(
        self,
        database: Database,
        sender: JobSender,
        *,
        stale_after_s: float,
        resend_after_s: float,
        clock: Callable[[], datetime] = utcnow,
        work: WorkerSettings | None = None,
        policy: DispatchPolicy | None = None,
    ):
        self.database = database
        self.policy = policy or DispatchPolicy()
        self.work = work  # where the jobs' work folders are (None: not cleaned here)
        self.sender = sender
        self.stale_after = timedelta(seconds=stale_after_s)
        self.resend_after = timedelta(seconds=resend_after_s)
        self.clock = clock

    def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        self._recover_stale(report)
        self._resend_lost(report)
        with self.database.session() as session:
            report.dispatched = dispatch(session, self.sender, self.policy, self.clock)
        if report:
            log.info("reconciler: %s", report)
        return report

    def run_forever(
        self,
        stop: threading.Event,
        interval_s: float,
        after_pass: Callable[[], object] | None = None,
    ) -> None:
        """Pass after pass until `stop` is set; `after_pass` runs after each successful one
        (`srnet reconcile --alive-file` touches a file a health check reads)."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # a database or broker hiccup: try again next pass
                log.exception("reconciler pass failed")
            else:
                if after_pass is not None:
                    after_pass()
            stop.wait(interval_s)

    # --- 1. dead workers ----------------------------------------------------------------------

    def _recover_stale(self, report: ReconcileReport) -> None:
        with self.database.session() as session:
            stale = JobRepository(session, self.clock).find_stale(stale_after=self.stale_after)
        for job in stale:
            with self.database.session() as session:
                recovered = JobRepository(session, self.clock).recover_stale(
                    job.id, stale_after=self.stale_after
                )
                session.commit()
            if recovered is None:
                continue  # its heartbeat came back, or someone else got there first
            status = recovered.job_status
            if status is JobStatus.queued:
                report.recovered.append(job.id)
                self._send(recovered, report)
            elif status is JobStatus.failed:
                report.failed.append(job.id)
                self._clean(job.id, report)
            elif status is JobStatus.cancelled:
                report.cancelled.append(job.id)
                self._clean(job.id, report)

    def _clean(self, job_id: uuid.UUID, report: ReconcileReport) -> None:
        """The dead attempt's work folder: nothing resumes from it any more."""
        if self.work is None:
            return
        from worker.workdir import remove_job_dir

        try:
            if remove_job_dir(self.work, job_id):
                report.cleaned.append(job_id)
        except OSError as exc:
            log.warning("job %s: work folder not removed (%s)", job_id, exc)

    # --- 2. lost messages ---------------------------------------------------------------------

    def _resend_lost(self, report: ReconcileReport) -> None:
        now = self.clock()
        with self.database.session() as session:
            queued = JobRepository(session, self.clock).find_queued_for_enqueue(
                not_sent_for=timedelta(0), limit=QUEUED_SCAN_LIMIT
            )
        sent_by_queue: dict[str, list[Job]] = {}
        for job in queued:
            if job.enqueued_at is None:
                if job.dispatched_at is None:
                    continue  # waits for the dispatcher (step 3)
                if job.updated_at < now - NEVER_SENT_GRACE:
                    self._send(job, report, resent=True)
            else:
                sent_by_queue.setdefault(job.queue, []).append(job)
        for queue, jobs in sent_by_queue.items():
            overdue = sorted(
                (j for j in jobs if j.enqueued_at and j.enqueued_at < now - self.resend_after),
                key=lambda j: (j.enqueued_at, j.created_at),
            )
            if not overdue:
                continue
            missing = self._missing(queue, jobs, overdue)
            if not missing:
                continue
            log.warning("queue %s: %d of %d queued job(s) have no message in the broker: "
                        "sending them again, oldest first", queue, len(missing),
                        len(jobs))  # fmt: skip
            for job in missing:
                if self._still_waiting(job):
                    self._send(job, report, resent=True)

    def _missing(self, queue: str, jobs: list[Job], overdue: list[Job]) -> list[Job]:
        """The overdue jobs (oldest send first) whose message the broker does not hold.

        Asked by job id where the broker can list them (messages waiting and messages a worker
        has fetched but not acknowledged); a job with a message is never sent again, however
        long it has waited. Where it cannot list, by count: as many of the oldest as the queue
        is short; where it cannot count either, all of them (a duplicate is a no-op claim, a
        lost job is not)."""
        pending = self.sender.pending_jobs(queue)
        if pending is not None:
            missing = [job for job in overdue if job.id not in pending]
            if missing:
                # Listed again: a message a worker was fetching (out of the list, not yet in
                # the unacknowledged set) during the first listing is seen in the second.
                again = self.sender.pending_jobs(queue)
                if again is not None:
                    missing = [job for job in missing if job.id not in again]
            return missing
        waiting = self.sender.waiting(queue)
        if waiting is None:
            return overdue
        return overdue[: max(0, len(jobs) - waiting)]

    def _still_waiting(self, job: Job) -> bool:
        """Still queued and not sent by someone else since the scan: a worker may have
        claimed it while the broker was read (its message gone from the list, rightly)."""
        with self.database.session() as session:
            current = JobRepository(session, self.clock).get(job.id)
            return (
                current is not None
                and current.job_status is JobStatus.queued
                and current.enqueued_at == job.enqueued_at
            )

    def _send(self, job: Job, report: ReconcileReport, resent: bool = False) -> None:
        try:
            self.sender.send(job.id, job.queue)
        except Exception as exc:
            report.send_errors += 1
            log.warning("job %s not sent (%s); next pass tries again", job.id, exc)
            return
        with self.database.session() as session:
            JobRepository(session, self.clock).mark_enqueued(job.id)
            session.commit()
        if resent:
            report.resent.append(job.id)
