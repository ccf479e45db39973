"""srcore callbacks that write a running job's stage, progress, metrics and checkpoints to the
database, and answer srcore's `should_stop()` from the job's lease."""

from __future__ import annotations

import logging
import math
import re
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
from srcore.jobspec.spec import JobSpec
from worker.lease import JobLease

log = logging.getLogger(__name__)

# (stage, seed, sparsity, step): one evaluation of one curve.
MetricKey = tuple[str, int | None, float | None, int]

DENSE_SPARSITY = 0.0  # the dense model is the 0 % point of the sparsity curve (as in metrics.json)

# srcore names the seed, the target sparsity and the dense loss in stage and progress details:
# "seed 1, loss none", "seed 1: mask_training, finetuned", "seed 1, sparsity 0.5 (IMP round 5)".
_SEED = re.compile(r"\bseed (\d+)")
_SPARSITY = re.compile(r"\bsparsity (\d*\.?\d+)")
_LOSS = re.compile(r"\bloss (\w+)")


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


def round_sparsity(value: float) -> float:
    return round(float(value), 6)


def metric_key(stage: str, seed: int | None, sparsity: float | None, step: int) -> MetricKey:
    return (stage, seed, None if sparsity is None else round_sparsity(sparsity), int(step))


def key_of(metric: Metric) -> MetricKey:
    return metric_key(metric.stage, metric.seed, metric.sparsity, metric.step)


class CurveTracker:
    """Which curve (stage, seed, target sparsity) an evaluation belongs to.

    srcore's `on_metrics` carries `tags` naming the curve (seed, target sparsity, dense loss).
    Without them (an older srcore) the seed and the target come from the latest stage/progress
    detail, and from the `sparsity` the pruning hooks report with every evaluation (exactly the
    target, except on a gradual schedule's ramp).
    """

    def __init__(self, spec: JobSpec):
        self.spec = spec
        self.targets = [round_sparsity(s) for s in spec.pruning.sparsities]
        self.job_dense_loss = spec.debias.loss if spec.dense.loss == "job" else "none"
        self.seed: int | None = spec.training.seeds[0] if len(spec.training.seeds) == 1 else None
        self.sparsity: float | None = None
        self.dense_loss: str | None = None

    def observe(self, detail: str | None, *, new_stage: bool = False) -> None:
        if not detail:
            if new_stage:
                self.sparsity = None
            return
        if match := _SEED.search(detail):
            self.seed = int(match.group(1))
        if match := _SPARSITY.search(detail):
            self.sparsity = round_sparsity(float(match.group(1)))
        elif new_stage:
            self.sparsity = None
        if match := _LOSS.search(detail):
            self.dense_loss = match.group(1)

    def stage_name(self, stage: str) -> str:
        # A conf_reg job fine-tunes twice: with its own loss (the search's start) and with
        # plain cross-entropy (the teacher). Keep the teacher's curve apart.
        if stage == "dense" and self.dense_loss not in (None, self.job_dense_loss):
            return "teacher"
        return stage

    def key(self, stage: str, step: int, metrics: dict[str, Any]) -> MetricKey:
        tags = metrics.get("tags")
        if isinstance(tags, dict) and "seed" in tags:
            return self._key_from_tags(stage, step, tags)
        name = self.stage_name(stage)
        if name in ("dense", "teacher"):
            return metric_key(name, self.seed, DENSE_SPARSITY, step)
        reported = metrics.get("sparsity")
        sparsity: float | None
        if isinstance(reported, int | float) and any(
            math.isclose(reported, t, abs_tol=1e-6) for t in self.targets
        ):
            sparsity = float(reported)
        elif self.spec.pruning.method == "mask_training" and self.sparsity is not None:
            sparsity = self.sparsity  # a gradual ramp: the curve of the run's target
        elif isinstance(reported, int | float):
            sparsity = float(reported)  # an IMP round below the first target
        else:
            sparsity = self.sparsity
        return metric_key(name, self.seed, sparsity, step)

    def _key_from_tags(self, stage: str, step: int, tags: dict[str, Any]) -> MetricKey:
        """srcore names the curve itself (TrainerConfig.tags): seed, target, dense loss."""
        self.seed = int(tags["seed"])
        if "loss" in tags:
            self.dense_loss = str(tags["loss"])
        name = self.stage_name(stage)
        if name in ("dense", "teacher"):
            return metric_key(name, self.seed, DENSE_SPARSITY, step)
        target = tags.get("target_sparsity")
        return metric_key(name, self.seed, None if target is None else float(target), step)


class JobReporter(Callbacks):
    """Writes what srcore reports for one claimed job. Database trouble is logged, never
    raised into the training loop: a missed progress write is not worth a failed job, and the
    curves are completed from metrics.json at the end."""

    def __init__(
        self,
        database: Database,
        job_id: uuid.UUID,
        worker_id: str,
        lease: JobLease,
        spec: JobSpec,
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
        self.curves = CurveTracker(spec)
        self.known_metrics: set[MetricKey] = set(known_metrics)
        self._last_progress_at: float | None = None
        self._last_progress_key: tuple[str, str | None] | None = None
        self.writes = 0  # database writes made (progress throttling is tested against it)

    # --- srcore callbacks ---------------------------------------------------------------------

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        self.curves.observe(detail, new_stage=True)
        self._last_progress_key = None
        self._write(
            "stage",
            lambda s: JobRepository(s).set_stage(self.job_id, self.worker_id, stage, detail),
        )

    def on_progress(self, progress: Progress) -> None:
        self.curves.observe(progress.detail)
        key = (progress.stage, progress.detail)
        now = self.clock()
        due = (
            key != self._last_progress_key
            or self._last_progress_at is None
            or now - self._last_progress_at >= self.progress_interval_s
            or progress.step >= progress.total_steps
        )
        if not due:
            return
        self._last_progress_key, self._last_progress_at = key, now
        eta = progress.eta_s if progress.eta_s is None or math.isfinite(progress.eta_s) else None
        self._write(
            "progress",
            lambda s: JobRepository(s).update_progress(
                self.job_id,
                self.worker_id,
                step=progress.step,
                total=progress.total_steps,
                examples_per_s=progress.examples_per_s,
                eta_s=eta,
            ),
        )

    def on_metrics(self, stage: str, step: int, metrics: dict[str, Any]) -> None:
        key = self.curves.key(stage, step, metrics)
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
                message=f"checkpoint: {self.curves.stage_name(stage)} step {step}",
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
