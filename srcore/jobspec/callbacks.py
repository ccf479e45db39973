"""How a running search talks to whoever runs it (the CLI's progress bar, the Celery worker).

srcore calls these; it never knows about HTTP, Celery or databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from srcore.jobspec.results import CurveId, DensePoint, ResultUnit


class Cancelled(Exception):
    """Raised inside srcore when `should_stop()` answers True between two steps."""


@dataclass(frozen=True)
class Progress:
    stage: str  # "bias", "dense", "search", "retrain", "evaluate", "export"
    step: int
    total_steps: int
    examples_per_s: float | None = None
    eta_s: float | None = None
    detail: str | None = None  # e.g. "seed 1, sparsity 0.5"


class Callbacks:
    """Default: do nothing. Subclass and override what you need."""

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        """A pipeline stage starts (or is taken from the stage cache: detail says so)."""

    def on_progress(self, progress: Progress) -> None:
        """Called every few steps; throttle on the receiving side if needed."""

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
