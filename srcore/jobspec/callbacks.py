"""How a running search talks to whoever runs it (the CLI's progress bar, the Celery worker).

srcore calls these; it never knows about HTTP, Celery or databases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from srcore.jobspec.results import CurveId, DensePoint, ResultUnit


class Cancelled(Exception):
    """Raised inside srcore when `should_stop()` answers True between two steps."""


@dataclass(frozen=True)
class Progress:
    """Where one training run stands (sent every few seconds, also while it evaluates); the
    job-wide fields are filled in by `srcore.pipeline.progress.JobProgress`."""

    stage: str  # "dense", "teacher", "search", "retrain"
    step: int
    total_steps: int
    examples_per_s: float | None = None
    eta_s: float | None = None  # this run: its steps and the evaluations still ahead
    detail: str | None = None  # e.g. "seed 1, sparsity 0.5"
    phase: Literal["train", "evaluate"] = "train"
    evaluations_done: int = 0  # evaluations of this run finished
    evaluations_total: int = 0  # evaluations this run makes in all
    eval_examples_done: int = 0  # of the evaluation running now (phase "evaluate")
    eval_examples_total: int = 0
    # The whole job, across its stages weighted by their expected work:
    job_fraction: float | None = None
    job_eta_s: float | None = None
    elapsed_s: float | None = None  # since this run of the pipeline started

    def with_(self, **changes: Any) -> Progress:
        return replace(self, **changes)


class Callbacks:
    """Default: do nothing. Subclass and override what you need."""

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        """A pipeline stage starts (or is taken from the stage cache: detail says so)."""

    def on_progress(self, progress: Progress) -> None:
        """Called every few seconds of training and of evaluation (and at a run's last step);
        throttle on the receiving side if needed."""

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        """An evaluation of `curve` finished. `metrics` is JSON-serialisable: each set's
        metrics, "selection", what the pruning hooks recorded (e.g. "sparsity"), "train_loss"
        (`srcore.jobspec.results.evaluation_payload`)."""

    def on_dense_point(self, point: DensePoint) -> None:
        """A seed's dense model is ready (fine-tuned here or taken from the stage cache)."""

    def on_unit(self, unit: ResultUnit) -> None:
        """A subnetwork is exported (or read back from an earlier attempt)."""

    def on_checkpoint(self, stage: str, step: int, path: Path) -> None:
        """A resumable checkpoint was written (atomically) at `path`."""

    def should_stop(self) -> bool:
        """Checked between steps; True makes the run raise `Cancelled`."""
        return False
