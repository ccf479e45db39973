"""`RecordingCallbacks`: the srcore callbacks tests hand to a trainer or a search, recording
every call in order, and asking to stop after a given number of `should_stop` checks (what a
cancel between steps looks like to the training loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.results import CurveId, DensePoint, ResultUnit


class RecordingCallbacks(Callbacks):
    def __init__(self, stop_after_checks: int | None = None) -> None:
        """`stop_after_checks`: `should_stop()` answers True from its (N+1)-th call on (the
        loop checks once per step, so a run stops after N steps); None: never."""
        self.stop_after_checks = stop_after_checks
        self.checks = 0
        self.stages: list[str] = []
        self.details: list[str | None] = []
        self.progress: list[Progress] = []
        self.metrics: list[tuple[CurveId, int, dict[str, Any]]] = []
        self.dense: list[DensePoint] = []
        self.units: list[ResultUnit] = []
        self.checkpoints: list[tuple[str, int, Path]] = []

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        self.stages.append(stage)
        self.details.append(detail)

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        self.metrics.append((curve, step, metrics))

    def on_dense_point(self, point: DensePoint) -> None:
        self.dense.append(point)

    def on_unit(self, unit: ResultUnit) -> None:
        self.units.append(unit)

    def on_checkpoint(self, stage: str, step: int, path: Path) -> None:
        self.checkpoints.append((stage, step, path))

    def should_stop(self) -> bool:
        self.checks += 1
        return self.stop_after_checks is not None and self.checks > self.stop_after_checks

    def checkpoint_steps(self, stage: str | None = None) -> list[int]:
        """The steps checkpoints were written at (of `stage`, or of every stage)."""
        return [step for s, step, _ in self.checkpoints if stage is None or s == stage]


class StopAfterSearchSteps(Callbacks):
    """Asks a search to stop once its search stage reported `steps` steps (a cancel mid-search,
    for the resume tests)."""

    def __init__(self, steps: int) -> None:
        self.steps, self.seen = steps, 0

    def on_progress(self, progress: Progress) -> None:
        if progress.stage == "search":
            self.seen = progress.step

    def should_stop(self) -> bool:
        return self.seen >= self.steps
