"""The `srnet.run_job` task: claim the job in the database, run the srcore search in the job's
work folder with callbacks that report to the database, store the results, finish the job.

Outcomes:
- the claim fails (another worker has it, it was cancelled or finished): return quietly, the
  message is acknowledged;
- bad input (data file, bias file, model, task config): `failed` with srcore's message, no retry;
- any other error: back to `queued` and sent again while attempts remain, else `failed`;
- a cancel request: srcore stops between two steps, the job becomes `cancelled`, no artifact;
- the worker shuts down: srcore stops between two steps (a checkpoint is written), the job goes
  back to `queued` and is sent again;
- the lease is lost (the reconciler gave the job to another worker): stop and write nothing.
A retry on the same work folder resumes from the checkpoints srcore left there.

Nothing here imports torch at module level: the worker's main process imports this module.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import logging
import os
import secrets
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import shared_task
from sqlalchemy.exc import SQLAlchemyError

from persistence.artifacts import ArtifactStore, make_artifact_store
from persistence.broker import RUN_JOB_TASK, CeleryJobSender, JobSender
from persistence.db import Database
from persistence.dispatch import DispatchPolicy, dispatch
from persistence.repositories import InvalidTransition, JobRepository, MetricRepository
from persistence.settings import Settings, WorkerSettings
from persistence.tables import EventKind, Job, JobStatus
from srcore.files import confined_to, without_install_paths
from srcore.jobspec.layout import OutputLayout
from srcore.jobspec.results import SearchResult
from worker.celery_app import shutdown_requested
from worker.gpus import job_device_environment
from worker.lease import JobLease
from worker.mlflow_export import export_finished_job
from worker.reporting import JobReporter, json_safe, key_of
from worker.results import record_selected_points, upload_results

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000


class Outcome(enum.StrEnum):
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    retrying = "retrying"  # an error; back to the queue for another attempt
    interrupted = "interrupted"  # the worker shut down; back to the queue, resumes later
    skipped = "skipped"  # not claimed: someone else runs it, or it is over
    lost = "lost"  # the claim was taken away while running; nothing written after that


def input_errors() -> tuple[type[BaseException], ...]:
    """Errors that say the job's input is wrong: another attempt would fail the same way."""
    from pydantic import ValidationError

    from srcore.bias.files import BiasFileError
    from srcore.data.errors import DataFormatError
    from srcore.jobspec.task_registry import TaskConfigError
    from srcore.models import ModelInputError, ModelNotFoundError
    from srcore.training.device import DeviceSettingError
    from srcore.training.memory import DeviceOutOfMemoryError

    return (
        DataFormatError,
        BiasFileError,
        ModelNotFoundError,
        ModelInputError,  # e.g. training.max_length beyond the model's position table
        TaskConfigError,
        ValidationError,  # a stored spec this worker's srcore does not accept
        FloatingPointError,  # the loss diverged: deterministic, it would diverge again
        DeviceOutOfMemoryError,  # the batch does not fit this GPU: every attempt would fail
        DeviceSettingError,  # e.g. bf16 on a GPU without bf16 tensor cores
    )


@dataclass
class WorkerContext:
    settings: Settings
    worker_settings: WorkerSettings
    database: Database
    store: ArtifactStore
    sender: JobSender
    shutdown: threading.Event = field(default_factory=threading.Event)
    # How long a new attempt waits for the previous one (same host, same work folder) to let go.
    work_dir_lock_wait_s: float = 60.0

    @classmethod
    def create(
        cls,
        settings: Settings,
        worker_settings: WorkerSettings,
        sender: JobSender,
        shutdown: threading.Event | None = None,
    ) -> WorkerContext:
        return cls(
            settings=settings,
            worker_settings=worker_settings,
            database=Database.from_settings(settings),
            store=make_artifact_store(settings),
            sender=sender,
            shutdown=shutdown or threading.Event(),
        )

    def close(self) -> None:
        self.database.dispose()


def new_worker_id() -> str:
    """Unique per attempt: host, process and a random part (a pid can be reused)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def execute_job(job_id: str | uuid.UUID, ctx: WorkerContext) -> Outcome:
    try:
        job_uuid = uuid.UUID(str(job_id))
    except ValueError:
        log.error("ignoring a message with an invalid job id %r", job_id)
        return Outcome.skipped
    worker_id = new_worker_id()
    with ctx.database.session() as session:
        # stale_after: a message delivered again after its worker died takes the job over
        # once the dead worker's heartbeat is old enough.
        job = JobRepository(session).claim(
            job_uuid, worker_id, stale_after=timedelta(seconds=ctx.settings.heartbeat_stale_s)
        )
        session.commit()
    # A claim (or a message that found its job gone) frees a handed-out slot: the next job,
    # in fair-share order, goes to the broker now rather than at the reconciler's next pass.
    _dispatch_next(ctx)
    if job is None:
        log.info("job %s not claimed: another worker has it, or it is over", job_uuid)
        return Outcome.skipped
    log.info("job %s claimed by %s (attempt %d/%d)", job.id, worker_id, job.attempt,
             job.max_attempts)  # fmt: skip
    try:
        return JobRun(ctx, job, worker_id).run()
    finally:
        _dispatch_next(ctx)  # its owner's running count fell: one of its waiting jobs may go
        _bound_work_folder(ctx)


def _dispatch_next(ctx: WorkerContext) -> None:
    """A dispatch pass (persistence.dispatch). A failure costs latency only: the reconciler
    dispatches every pass, so it is logged, not raised into the job."""
    try:
        with ctx.database.session() as session:
            dispatch(session, ctx.sender, DispatchPolicy.from_settings(ctx.settings))
    except SQLAlchemyError:
        log.error("dispatch pass failed; the reconciler's next pass dispatches", exc_info=True)


def _bound_work_folder(ctx: WorkerContext) -> None:
    """After each job: the stage cache back under SRNET_STAGE_CACHE_MAX_GB (worker.workdir)."""
    from worker.workdir import bound_stage_cache

    try:
        bound_stage_cache(ctx.worker_settings)
    except OSError:  # a full or read-only disk must not turn a finished job into an error
        log.exception("stage cache eviction failed")


class JobRun:
    """One attempt of one claimed job."""

    def __init__(self, ctx: WorkerContext, job: Job, worker_id: str):
        self.ctx = ctx
        self.job = job
        self.worker_id = worker_id
        self.out_dir = ctx.worker_settings.job_dir(job.id)
        self.lease = JobLease(
            ctx.database,
            job.id,
            worker_id,
            interval_s=ctx.worker_settings.heartbeat_interval_s,
            shutdown=ctx.shutdown,
        )

    def run(self) -> Outcome:
        self.lease.start()
        try:
            with self._work_dir_lock() as locked:
                if not locked:
                    return self._give_back(
                        "the previous attempt still holds the work folder",
                        Outcome.retrying,
                        refund=True,
                    )
                # Every file the job names is checked once opened, and model folders are
                # loaded from a checked private copy (srcore.files; issue 19 item 14).
                staging = self.out_dir.parent / f".{self.job.id}.confined"
                with confined_to(self.ctx.settings.data_roots, staging):
                    return self._run_locked()
        finally:
            self.lease.stop()

    def _run_locked(self) -> Outcome:
        from srcore.jobspec.callbacks import Cancelled
        from srcore.jobspec.spec import JobSpec
        from srcore.pipeline import run_search
        from srcore.training.trainer import ResumeMismatchError

        permanent = input_errors()
        try:
            spec = JobSpec.model_validate(self.job.spec)
            confined = self._outside_data_roots(spec)
            if confined:
                return self._fail(confined)
            self._note_resume()
            reporter = JobReporter(
                self.ctx.database, self.job.id, self.worker_id, self.lease,
                out_dir=self.out_dir,
                progress_interval_s=self.ctx.worker_settings.progress_interval_s,
                known_metrics=self._known_metrics(),
            )  # fmt: skip
            with job_device_environment(self.job.queue):
                self._note_device()
                result = run_search(
                    spec, self.out_dir, reporter, cache_dir=self.ctx.worker_settings.stage_cache
                )
        except Cancelled:
            return self._stopped()
        except ResumeMismatchError as exc:
            # Checkpoints an older srcore wrote with other settings: the next attempt starts
            # this job over instead of failing it.
            shutil.rmtree(OutputLayout(self.out_dir).work_dir, ignore_errors=True)
            return self._error(exc)
        except permanent as exc:
            if self.lease.should_stop():
                return self._stopped()
            return self._fail(str(exc) or type(exc).__name__)
        except Exception as exc:
            return self._error(exc)
        try:
            return self._finish(result)
        except Exception as exc:
            return self._error(exc)

    def _outside_data_roots(self, spec: Any) -> str | None:
        """The API refuses specs naming local files outside DATA_ROOTS; a worker checks again
        (a row written by another client or an older API must not read the worker's files)."""
        from srcore.jobspec.spec_paths import path_problems

        bad = path_problems(spec, self.ctx.settings.data_roots)
        if not bad:
            return None
        where = "; ".join(
            f"{'.'.join(str(p) for p in loc)}: {raw} ({why})" for loc, raw, why in bad
        )
        return f"local path not allowed on this worker (SRNET_DATA_ROOTS): {where}"

    # --- endings ------------------------------------------------------------------------------

    def _finish(self, result: SearchResult) -> Outcome:
        if self.lease.should_stop():
            return self._stopped()
        uploaded = upload_results(self.ctx.store, self.job.id, result, name=self.job.name)
        self.lease.stop()  # the transition below is the last word; no heartbeat after it
        try:
            with self.ctx.database.session() as session:
                record_selected_points(session, self.job.id, result)
                uploaded.add_rows(session, self.job.id)
                # Only from `running`: a cancel that came in meanwhile wins over the result.
                JobRepository(session).transition(
                    self.job.id,
                    JobStatus.succeeded,
                    worker_id=self.worker_id,
                    expected=[JobStatus.running],
                    message=f"succeeded: {len(uploaded.artifacts)} artifacts stored",
                    data=json_safe(
                        {"artifacts": len(uploaded.artifacts), "summary": result.summary_json()}
                    ),
                )
                session.commit()
        except InvalidTransition as exc:
            uploaded.discard()
            if exc.current is JobStatus.cancelling:
                return self._stopped(cancel=True)
            log.warning("job %s: not ours any more at the end (%s)", self.job.id, exc)
            return Outcome.lost
        except BaseException:
            uploaded.discard()
            raise
        # Optional tracking (MLFLOW_TRACKING_URI): before _clean, which removes the files.
        export_finished_job(self.ctx.database, self.job, result, self.ctx.worker_settings)
        self._clean()
        log.info("job %s succeeded", self.job.id)
        return Outcome.succeeded

    def _stopped(self, cancel: bool = False) -> Outcome:
        """srcore stopped between two steps (or the job ended while a stop was asked)."""
        if self.lease.lost:
            log.warning("job %s: lease lost; stopped without writing", self.job.id)
            return Outcome.lost
        if cancel or self.lease.cancel_requested:
            try:
                self._transition(JobStatus.cancelled, message="cancelled; the run stopped")
            except InvalidTransition as exc:
                log.warning("job %s: cannot record the cancel (%s)", self.job.id, exc)
                return Outcome.lost
            self._clean()
            return Outcome.cancelled
        if self.lease.interrupted:
            return self._give_back(
                "the worker is shutting down; the job resumes from its checkpoint",
                Outcome.interrupted,
                refund=True,  # not the job's fault: it does not use up an attempt
            )
        return self._error(RuntimeError("the run stopped without being asked to"))

    def _fail(self, error: str) -> Outcome:
        error = without_install_paths(error)[:MAX_ERROR_CHARS]
        log.warning("job %s failed: %s", self.job.id, error)
        try:
            self._transition(JobStatus.failed, error=error, message=f"failed: {error}")
        except InvalidTransition as exc:
            log.warning("job %s: cannot record the failure (%s)", self.job.id, exc)
            return Outcome.lost
        self._clean()
        return Outcome.failed

    def _error(self, exc: BaseException) -> Outcome:
        if self.lease.lost:
            return Outcome.lost
        if self.lease.cancel_requested:
            return self._stopped(cancel=True)
        reason = without_install_paths(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        log.error("job %s: attempt %d failed", self.job.id, self.job.attempt, exc_info=exc)
        if self.job.attempt < self.job.max_attempts:
            return self._give_back(f"attempt {self.job.attempt} failed: {reason}",
                                   Outcome.retrying, error=reason)  # fmt: skip
        return self._fail(f"{reason} (attempt {self.job.attempt} of {self.job.max_attempts})")

    def _give_back(
        self, message: str, outcome: Outcome, error: str | None = None, refund: bool = False
    ) -> Outcome:
        """Back to `queued` (the work folder is kept: the next attempt resumes from it) and
        sent again; if the broker does not take it, the reconciler will."""
        try:
            self._transition(JobStatus.queued, message=message, error=error,
                             data={"attempt": self.job.attempt}, refund_attempt=refund)  # fmt: skip
        except InvalidTransition as exc:
            log.warning("job %s: cannot give it back (%s)", self.job.id, exc)
            return Outcome.lost
        try:
            self.ctx.sender.send(self.job.id, self.job.queue)
        except Exception as exc:
            log.warning("job %s: not sent again (%s); the reconciler will", self.job.id, exc)
            return outcome
        with contextlib.suppress(SQLAlchemyError), self.ctx.database.session() as session:
            JobRepository(session).mark_enqueued(self.job.id)
            session.commit()
        return outcome

    def _transition(self, to: JobStatus, **kwargs: Any) -> None:
        self.lease.stop()
        with self.ctx.database.session() as session:
            JobRepository(session).transition(self.job.id, to, worker_id=self.worker_id, **kwargs)
            session.commit()

    # --- the work folder ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _work_dir_lock(self) -> Iterator[bool]:
        """An exclusive lock on the job's work folder: an attempt that outlived its lease (its
        heartbeats could not reach the database) must not write beside its successor."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir.parent / f".{self.job.id}.lock", "w") as handle:
            deadline = time.monotonic() + self.ctx.work_dir_lock_wait_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline or self.lease.should_stop():
                        yield False
                        return
                    time.sleep(0.5)
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _note_resume(self) -> None:
        """Record what an earlier attempt left behind (srcore resumes from it)."""
        found = OutputLayout(self.out_dir).resume_points()
        if not found["checkpoints"] and not found["finished_units"]:
            return
        parts = [f"{c['path']} at step {c['step']}" for c in found["checkpoints"]]
        if found["finished_units"]:
            parts.append(f"{len(found['finished_units'])} finished sparsity unit(s)")
        with contextlib.suppress(SQLAlchemyError), self.ctx.database.session() as session:
            JobRepository(session).events.add(
                self.job.id,
                EventKind.log,
                message="resuming from the work folder: " + "; ".join(parts),
                data={"resume": found, "attempt": self.job.attempt},
            )
            session.commit()

    def _note_device(self) -> None:
        """Record where this attempt runs (an event per attempt: a retry may land elsewhere);
        metrics.json records the same from srcore."""
        from srcore.training.device import describe_device, pick_device

        # GPU: name, UUID, memory, compute capability, CUDA runtime and driver; CPU: model.
        device = describe_device(pick_device())
        pinned = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = device.get("name") or device.get("type")
        if device.get("uuid"):
            where = f"{where} ({device['uuid']})"
        with contextlib.suppress(SQLAlchemyError), self.ctx.database.session() as session:
            JobRepository(session).events.add(
                self.job.id,
                EventKind.log,
                message=f"running on {device.get('type')}: {where}",
                data={"device": device, "queue": self.job.queue, "cuda_visible_devices": pinned,
                      "worker": self.worker_id, "attempt": self.job.attempt},
            )  # fmt: skip
            session.commit()

    def _known_metrics(self) -> list[Any]:
        with self.ctx.database.session() as session:
            return [key_of(m) for m in MetricRepository(session).list(self.job.id)]

    def _clean(self) -> None:
        if not self.ctx.worker_settings.keep_work_dir:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            (self.out_dir.parent / f".{self.job.id}.lock").unlink(missing_ok=True)


# --- the Celery task ---------------------------------------------------------------------------


# shared_task: registered on every app make_celery_app builds (`srnet worker` makes its own).
@shared_task(
    name=RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def run_job(self: Any, job_id: str) -> str:
    ctx = WorkerContext.create(
        self.app.conf.srnet_settings,
        self.app.conf.srnet_worker_settings,
        CeleryJobSender(self.app),
        shutdown_requested,
    )
    try:
        return execute_job(job_id, ctx).value
    finally:
        ctx.close()
