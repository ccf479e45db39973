"""srcore callbacks that write a running job's stage, progress, metrics and checkpoints to the
database, and answer srcore's `should_stop()` from the job's lease."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from persistence.db import Database
from persistence.repositories import JobRepository, Lease, MetricRepository
from persistence.tables import EventKind, Metric
from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.results import CurveId
from worker.lease import JobLease

log = logging.getLogger(__name__)

# (stage, seed, sparsity, step): one evaluation of one curve, as the metrics table keys it.
MetricKey = tuple[str, int | None, float | None, int]


def json_safe(value: Any) -> Any:
    """`value` with NaN and infinities as None: PostgreSQL's JSONB refuses them (an F1 with no
    positive prediction, a mean over nothing), and one refused row must not fail a job."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def round_sparsity(value: float) -> float:
    return round(float(value), 6)


def metric_key(stage: str, seed: int | None, sparsity: float | None, step: int) -> MetricKey:
    return (stage, seed, None if sparsity is None else round_sparsity(sparsity), int(step))


def curve_key(curve: CurveId, step: int) -> MetricKey:
    """The row of one evaluation of `curve` (srcore names the curve: stage, seed, target)."""
    return metric_key(curve.stage, curve.seed, curve.sparsity, step)


def key_of(metric: Metric) -> MetricKey:
    return metric_key(metric.stage, metric.seed, metric.sparsity, metric.step)


class JobReporter(Callbacks):
    """Writes what srcore reports for one claimed job. Database trouble is logged, never
    raised into the training loop: a missed progress write is not worth a failed job, and the
    curves are completed from the search's result at the end (`record_selected_points`)."""

    def __init__(
        self,
        database: Database,
        job_id: uuid.UUID,
        worker_id: str,
        lease: JobLease,
        *,
        out_dir: Path,
        progress_interval_s: float = 1.0,
        known_metrics: Iterable[MetricKey] = (),
        clock: Callable[[], float] = time.monotonic,
    ):
        self.database = database
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease = lease
        self.out_dir = out_dir
        self.progress_interval_s = progress_interval_s
        self.clock = clock
        self.known_metrics: set[MetricKey] = set(known_metrics)
        self._last_progress_at: float | None = None
        self._last_progress_key: tuple[str, str | None] | None = None
        self.writes = 0  # database writes made (progress throttling is tested against it)

    # --- srcore callbacks ---------------------------------------------------------------------

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        self._last_progress_key = None
        self._write(
            "stage",
            lambda s: JobRepository(s).set_stage(self.job_id, self.worker_id, stage, detail),
        )

    def on_progress(self, progress: Progress) -> None:
        key = (progress.stage, progress.detail)
        now = self.clock()
        due = (
            key != self._last_progress_key
            or self._last_progress_at is None
            or now - self._last_progress_at >= self.progress_interval_s
            # a run's last step, not every report of the evaluation that follows it
            or (progress.step >= progress.total_steps and progress.phase == "train")
        )
        if not due:
            return
        self._last_progress_key, self._last_progress_at = key, now
        self._write(
            "progress",
            lambda s: JobRepository(s).update_progress(
                self.job_id,
                self.worker_id,
                step=progress.step,
                total=progress.total_steps,
                examples_per_s=progress.examples_per_s,
                eta_s=finite(progress.eta_s),
                job_fraction=finite(progress.job_fraction),
                job_eta_s=finite(progress.job_eta_s),
                phase=progress.phase,
            ),
        )

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        key = curve_key(curve, step)
        if key in self.known_metrics:
            # Evaluated again after a resume (the worker died between the evaluation and its
            # checkpoint): the curve already has this point.
            return
        self.add_metric(key, metrics)

    def on_checkpoint(self, stage: str, step: int, path: Path) -> None:
        try:
            where = str(Path(path).relative_to(self.out_dir))
        except ValueError:
            where = Path(path).name
        self._write(
            "checkpoint",
            lambda s: JobRepository(s).events.add(
                self.job_id,
                EventKind.checkpoint,
                message=f"checkpoint: {stage} step {step}",
                data={"stage": stage, "step": step, "path": where},
            ),
        )

    def should_stop(self) -> bool:
        return self.lease.should_stop()

    # --- writes -------------------------------------------------------------------------------

    def add_metric(self, key: MetricKey, payload: dict[str, Any], selected: bool = False) -> None:
        stage, seed, sparsity, step = key

        def add(session: Session) -> None:
            MetricRepository(session).add(
                self.job_id,
                stage=stage,
                step=step,
                payload=json_safe(payload),
                seed=seed,
                sparsity=sparsity,
                selected=selected,
            )

        if self._write("metrics", add):
            self.known_metrics.add(key)

    def _write(self, what: str, action: Callable[[Session], Any]) -> bool:
        if self.lease.lost:
            return False  # not our job any more: write nothing
        try:
            with self.database.session() as session:
                answer = action(session)
                session.commit()
        except SQLAlchemyError as exc:
            log.warning("job %s: %s not recorded: %s", self.job_id, what, exc)
            return False
        self.writes += 1
        if isinstance(answer, Lease):
            self.lease.observe(answer)
        return True
