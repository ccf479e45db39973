"""A worker that ends by itself: after a set time without work (`--exit-when-idle 15m`), and
before its Slurm time limit (no new claims once less than `--end-margin` is left).

The decision is a plain object (`WorkerLifetime.check`: given the time and whether a job is in
hand, what to do); `install` hooks it into a Celery worker as a consumer bootstep whose timer
runs in the consumer's own loop, so cancelling the queues and asking for a warm shutdown happen
where Celery does them itself. A worker that exits this way is idle: its exit is a warm
shutdown with nothing to hand back, exit code 0.

A job killed by the time limit or by `scancel` is safe too: Slurm sends SIGTERM to every
process of the job, the worker's main process starts a warm shutdown, and the pool child that
runs the job (whose SIGTERM would otherwise kill it on the spot: billiard resets it to the
default) takes it as the stop request instead, checkpoints at its next step and hands the job
back to the queue. `KillWait` later Slurm sends SIGKILL; a job that could not stop by then is
recovered by the reconciler from its last checkpoint.

End of the time limit: `SLURM_JOB_END_TIME` (epoch seconds, where the Slurm release sets it;
22.05 does not), else `squeue -h -j $SLURM_JOB_ID -o %e`, asked again every few minutes
(`scontrol update` may move it).
"""

from __future__ import annotations

import enum
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

log = logging.getLogger("srnet.slurm.lifetime")

END_TIME_REFRESH_S = 300.0


class Action(enum.StrEnum):
    keep = "keep"
    stop_claiming = "stop_claiming"  # cancel the queues: no new job is taken
    exit = "exit"  # warm shutdown (the worker is idle)


@dataclass
class WorkerLifetime:
    """When a worker stops taking jobs and when it exits. Times are `time.time()` seconds."""

    exit_when_idle_s: float | None = None
    end_margin_s: float | None = None
    end_time: Callable[[], float | None] = lambda: None
    started_at: float = field(default_factory=time.time)
    last_busy: float | None = None
    claiming: bool = True
    reason: str = ""

    def check(self, now: float, busy: bool) -> Action:
        if busy:
            self.last_busy = now
        if self.claiming and self.end_margin_s is not None:
            end = self.end_time()
            if end is not None and end - now < self.end_margin_s:
                self.claiming = False
                self.reason = (
                    f"{max(0.0, end - now):.0f} s left of the time limit, less than the "
                    f"{self.end_margin_s:.0f} s margin: no new jobs"
                )
                return Action.exit if not busy else Action.stop_claiming
        if busy:
            return Action.keep
        if not self.claiming:
            return Action.exit  # the job in hand when claims stopped has ended
        if self.exit_when_idle_s is not None:
            idle_since = self.last_busy if self.last_busy is not None else self.started_at
            if now - idle_since >= self.exit_when_idle_s:
                self.reason = (
                    f"idle for {now - idle_since:.0f} s "
                    f"(exit when idle {self.exit_when_idle_s:.0f} s)"
                )
                return Action.exit
        return Action.keep


# --- the end of the Slurm time limit ---------------------------------------------------------


def parse_squeue_time(text: str) -> float | None:
    """squeue's `%e`: local time `2026-12-03T10:00:00`, or N/A / NONE / Unknown (no limit)."""
    text = text.strip()
    if not text or text.upper() in ("N/A", "NONE", "UNKNOWN", "INVALID"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()  # naive: local time, as Slurm prints
    except ValueError:
        raise ValueError(f"squeue gave an end time that is not a time: {text!r}") from None


class SlurmEndTime:
    """The running Slurm job's end time, from its environment or squeue (cached a while)."""

    def __init__(
        self,
        environ: dict[str, str] | None = None,
        run: Callable[[list[str]], str] | None = None,
        refresh_s: float = END_TIME_REFRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.environ = dict(os.environ if environ is None else environ)
        self.run = run or _run_squeue
        self.refresh_s = refresh_s
        self.clock = clock
        self._value: float | None = None
        self._asked_at: float | None = None

    @property
    def job_id(self) -> str | None:
        return self.environ.get("SLURM_JOB_ID")

    def __call__(self) -> float | None:
        fixed = self.environ.get("SLURM_JOB_END_TIME")
        if fixed:
            return float(fixed)
        if self.job_id is None:
            return None
        now = self.clock()
        if self._asked_at is None or now - self._asked_at >= self.refresh_s:
            try:
                out = self.run(["squeue", "-h", "-j", self.job_id, "-o", "%e"])
                self._value = parse_squeue_time(out.splitlines()[0] if out.strip() else "")
                self._asked_at = now
            except (OSError, subprocess.SubprocessError, ValueError) as exc:
                # Keep the last known end; the next check asks again.
                log.error("could not read this Slurm job's end time: %s", exc)
        return self._value


def _run_squeue(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


# --- the Celery hook ------------------------------------------------------------------------


def _on_task_prerun(**_: Any) -> None:
    """Pool child, before a job: SIGTERM (Slurm sends it to every process of the job) asks the
    job to stop at its next step, like the main process's stop signal does."""
    from worker.celery_app import shutdown_requested

    signal.signal(signal.SIGTERM, lambda *_: shutdown_requested.set())


def install(app: Any, lifetime: WorkerLifetime, poll_s: float = 1.0) -> None:
    """Add the lifetime checks to the worker `app` runs (before `worker_main`)."""
    from celery import bootsteps, signals
    from celery.worker import state

    signals.task_prerun.connect(_on_task_prerun, weak=False)

    class LifetimeStep(bootsteps.StartStopStep):
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, parent: Any, **kwargs: Any) -> None:
            super().__init__(parent, **kwargs)
            self.tref: Any = None

        def start(self, c: Any) -> None:
            if not lifetime.claiming:
                self._cancel_queues(c)
            self.tref = c.timer.call_repeatedly(poll_s, self.tick, (c,))

        def stop(self, c: Any) -> None:
            if self.tref is not None:
                self.tref.cancel()
                self.tref = None

        def tick(self, c: Any) -> None:
            busy = bool(state.active_requests or state.reserved_requests)
            action = lifetime.check(time.time(), busy)
            if action is Action.keep:
                return
            if action is Action.stop_claiming:
                log.warning("srnet worker: %s; exits when the job in hand ends", lifetime.reason)
                self._cancel_queues(c)
                return
            log.warning("srnet worker: exiting: %s", lifetime.reason or "claims stopped")
            self._cancel_queues(c)
            self.stop(c)
            state.should_stop = 0  # the loop raises WorkerShutdown(0): a warm shutdown

        @staticmethod
        def _cancel_queues(c: Any) -> None:
            for queue in list(c.app.amqp.queues.consume_from or {}):
                c.cancel_task_queue(queue)

    app.steps["consumer"].add(LifetimeStep)


def lifetime_from_options(app: Any, exit_when_idle: str | None, end_margin: str | None) -> None:
    """`srnet worker --exit-when-idle D --end-margin D`: install the checks (SystemExit 2
    naming the option when a duration is not one)."""
    import sys

    from srnet.slurm.settings import parse_duration

    try:
        idle = parse_duration(exit_when_idle, "--exit-when-idle") if exit_when_idle else None
        margin = parse_duration(end_margin, "--end-margin") if end_margin else None
    except ValueError as exc:
        print(f"srnet worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    end_time = SlurmEndTime()
    lifetime = WorkerLifetime(exit_when_idle_s=idle, end_margin_s=margin, end_time=end_time)
    install(app, lifetime)
    where = f"Slurm job {end_time.job_id}" if end_time.job_id else "not in a Slurm job"
    print(f"srnet worker: exit when idle {idle}s, end margin {margin}s ({where})", file=sys.stderr)
