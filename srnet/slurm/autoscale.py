"""The Slurm autoscaler: keeps the worker tasks (pending + running in squeue) matched to the
jobs that need a worker, between a minimum and a maximum.

Jobs that need a worker, in the workers' queues: every `queued` one, plus the `running` (and
`cancelling`) ones up to the number of running worker tasks. A running job is held by a running
worker; one held by a worker outside Slurm (a lab machine serving the same queue) has no task
to count, and counting it would start a Slurm worker that idles, exits and is started again.

- Too few: one `sbatch` of an array with the missing number of tasks.
- Too many: cancel pending tasks only (newest first). A running worker is never cancelled:
  it may hold a job, and it exits by itself once idle (`--exit-when-idle`), so scaling down
  to the minimum takes the idle time plus Slurm's cleanup.

Every pass that changes something, or sees something change, is one JSON line in
STATE_DIR/decisions.jsonl (and the log); `srnet slurm status` prints the last ones.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from persistence.db import Database
from persistence.dispatch import DispatchPolicy, startable_queued
from persistence.repositories import JobRepository
from persistence.tables import JobStatus
from srnet.slurm.batch import WorkerBatch
from srnet.slurm.commands import SlurmCommandError, SlurmCommands, WorkerTask
from srnet.slurm.settings import SlurmSettings

log = logging.getLogger("srnet.slurm.autoscale")

ACTIVE_STATUSES = (JobStatus.running, JobStatus.cancelling)
DECISIONS_FILE = "decisions.jsonl"
KEEP_DECISIONS = 1000  # lines kept when the file is trimmed (at twice that)


@dataclass(frozen=True)
class Plan:
    wanted: int
    submit: int = 0
    cancel: tuple[str, ...] = ()
    why: str = ""


def demand_of(queued: int, active: int, tasks: list[WorkerTask]) -> int:
    """Jobs that need a worker: the queued ones and the active (running, cancelling) ones that
    running worker tasks can be holding."""
    return queued + min(active, sum(t.running for t in tasks))


def plan(demand: int, tasks: list[WorkerTask], *, min_workers: int, max_workers: int) -> Plan:
    """What to do, given the jobs that need a worker and the worker tasks in squeue."""
    wanted = max(min_workers, min(max_workers, demand))
    pending = [t for t in tasks if t.pending]
    have = len(pending) + sum(t.running for t in tasks)
    if have < wanted:
        return Plan(
            wanted,
            submit=wanted - have,
            why=f"{demand} job(s) need a worker, {have} worker task(s)",
        )
    if have > wanted and pending:
        # Newest first: the oldest pending task is the nearest to starting.
        newest = sorted(pending, key=_submit_order, reverse=True)[: have - wanted]
        return Plan(
            wanted,
            cancel=tuple(t.job_id for t in newest),
            why=f"{demand} job(s) need a worker, {have} worker task(s)",
        )
    return Plan(wanted)


def count_jobs(
    database: Database, queues: tuple[str, ...], policy: DispatchPolicy | None = None
) -> tuple[int, int]:
    """(queued, active) jobs of every owner in these queues. With the dispatch `policy`, a
    queued job of an owner at its running limit is not counted: it cannot start yet, and a
    worker started for it would sit idle (persistence.dispatch.startable_queued)."""
    with database.session() as session:
        jobs = JobRepository(session)
        if policy is None:
            queued = jobs.count_in_queues(queues, [JobStatus.queued])
        else:
            queued = startable_queued(session, queues, policy)
        active = jobs.count_in_queues(queues, ACTIVE_STATUSES)
    return queued, active


def _submit_order(task: WorkerTask) -> tuple[int, int]:
    base, _, index = task.job_id.partition("_")
    return (int(base) if base.isdigit() else 0, int(index) if index.isdigit() else 0)


@dataclass
class Decision:
    at: str
    demand: int
    queued: int
    pending: int
    running: int
    wanted: int
    action: str  # submit | cancel | none | error
    count: int = 0
    job_ids: list[str] = field(default_factory=list)
    why: str = ""
    error: str | None = None

    def observation(self) -> tuple[int, int, int, int]:
        return (self.demand, self.pending, self.running, self.wanted)


class DecisionLog:
    """Decisions as JSON lines, trimmed to the last KEEP_DECISIONS."""

    def __init__(self, folder: Path):
        self.path = folder / DECISIONS_FILE

    def append(self, decision: Decision) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(decision)) + "\n")
        lines = self.path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 2 * KEEP_DECISIONS:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("\n".join(lines[-KEEP_DECISIONS:]) + "\n", encoding="utf-8")
            tmp.replace(self.path)

    def last(self, n: int) -> list[Decision]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-n:]
        return [Decision(**json.loads(line)) for line in lines if line.strip()]


class Autoscaler:
    def __init__(
        self,
        database: Database,
        commands: SlurmCommands,
        slurm: SlurmSettings,
        *,
        job_env: dict[str, str],
        log_dir: Path,
        decisions: DecisionLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: DispatchPolicy | None = None,
    ):
        self.database = database
        self.policy = policy  # the dispatcher's limits: jobs that cannot start are no demand
        self.commands = commands
        self.slurm = slurm
        self.job_env = job_env
        self.log_dir = log_dir
        self.decisions = decisions
        self.clock = clock
        self._last: tuple[int, int, int, int] | None = None

    def jobs(self) -> tuple[int, int]:
        """(queued, active) jobs in the workers' queues."""
        return count_jobs(self.database, self.slurm.queues, self.policy)

    def run_once(self) -> Decision:
        queued, active = self.jobs()
        need = queued + active  # until squeue answers
        try:
            tasks = self.commands.tasks()
        except SlurmCommandError as exc:  # slurmctld restarting: recorded, the next pass retries
            decision = Decision(
                at=self.clock().isoformat(timespec="seconds"),
                demand=need,
                queued=queued,
                pending=0,
                running=0,
                wanted=0,
                action="error",
                error=str(exc),
            )
            self._record(decision)
            return decision
        need = demand_of(queued, active, tasks)
        todo = plan(
            need, tasks, min_workers=self.slurm.min_workers, max_workers=self.slurm.max_workers
        )
        decision = Decision(
            at=self.clock().isoformat(timespec="seconds"),
            demand=need,
            queued=queued,
            pending=sum(t.pending for t in tasks),
            running=sum(t.running for t in tasks),
            wanted=todo.wanted,
            action="none",
            why=todo.why,
        )
        try:
            if todo.submit:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                batch = WorkerBatch(self.slurm, todo.submit, self.log_dir)
                job_id = self.commands.submit(batch.script(), self.job_env)
                decision.action, decision.count, decision.job_ids = "submit", todo.submit, [job_id]
            elif todo.cancel:
                self.commands.cancel_pending(todo.cancel)
                decision.action, decision.count = "cancel", len(todo.cancel)
                decision.job_ids = list(todo.cancel)
        except SlurmCommandError as exc:
            decision.action, decision.error = "error", str(exc)
        self._record(decision)
        return decision

    def _record(self, decision: Decision) -> None:
        changed = decision.observation() != self._last
        self._last = decision.observation()
        if decision.action == "none" and not changed:
            return
        self.decisions.append(decision)
        message = (
            f"autoscale: {decision.action} {decision.count or ''} "
            f"(demand {decision.demand}, pending {decision.pending}, running "
            f"{decision.running}, wanted {decision.wanted}) {decision.job_ids or ''}"
        )
        if decision.error:
            log.error("%s: %s", message, decision.error)
        else:
            log.info("%s", message)

    def run_forever(self, stop: threading.Event, interval_s: float) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # the database did not answer: the next pass tries again
                log.exception("autoscale pass failed")
            stop.wait(interval_s)
