"""Whole-job progress: how far a job is across all its stages, and how long it has left.

Each stage is weighed by its expected work, counted in example-forwards: a training step
costs three forwards per example (forward and backward), an evaluation one per evaluated
example (`srcore.pipeline.work`). The stages come from the `StagePlan`, the search stage's size
from its pruning method (`PruningMethod.search_work`), the rest from the spec; the measured
speed (work per second of stages that actually ran, not ones the stage cache answered) turns
the work left into an ETA.

`JobProgress` wraps the caller's callbacks: it follows `on_stage` through the expected
sequence and adds `job_fraction`, `job_eta_s` and `elapsed_s` to every `Progress`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.results import CurveId, DensePoint, ResultUnit
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.methods import pruning_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.work import StageWork, WorkModel

__all__ = ["JobProgress", "StageWork", "expected_work"]

DATA_COST = 0.05  # loading and tokenizing, per example, in forwards
BIAS_COST = 0.05  # the bias model's cross-fitting, per training example
EXPORT_COST = 0.25  # writing a mask and a checkpoint, as a share of one evaluation


def expected_work(
    spec: JobSpec, plan: StagePlan, train_examples: int, eval_examples: int
) -> list[StageWork]:
    """The stages `run_search` announces, in order, with their expected work."""
    t, d = spec.training, spec.dense
    work = WorkModel(train_examples, eval_examples, t.batch_size, t.eval_every)
    dense_steps = work.steps(d.epochs, d.max_steps)
    export = StageWork("export", EXPORT_COST * eval_examples)
    stages = [
        StageWork("data", DATA_COST * (train_examples + eval_examples)),
        StageWork("bias", BIAS_COST * train_examples if plan.needs_bias else 0.0),
    ]
    for _seed in t.seeds:
        if plan.teacher == "dense":
            stages.append(work.training("dense", dense_steps, end=d.stop_at_step))
        if plan.needs_dense:
            if plan.teacher == "dense" and plan.dense_loss == "none":
                stages.append(StageWork("dense", 0.0))  # the teacher's fine-tune, cached
            else:
                stages.append(work.training("dense", dense_steps, end=d.stop_at_step))
        stages.append(pruning_method(plan.method).search_work(plan, t, work))
        for _sparsity in plan.sparsities:
            if plan.retrains:
                stages.append(work.training("retrain", dense_steps))
            stages.append(export)
    stages.append(StageWork("export", 0.0))  # the report
    return stages


class JobProgress(Callbacks):
    """Forwards every callback to `inner`; `on_progress` gets the job-wide fields."""

    def __init__(self, inner: Callbacks, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.clock = clock
        self.started = clock()
        self.stages: list[StageWork] = []
        self.current = 0  # index into stages
        self.done = 0.0  # work of the stages before the current one
        self.runs_done = 0  # finished runs of the current stage
        self._run_key: tuple[str, str | None] | None = None
        self._run_work = 0.0  # work reached in the current run
        self._last: tuple[float, float, tuple[str, str | None]] | None = None  # time, work, run
        self.measured_work = 0.0  # work done while progress was reported ...
        self.measured_s = 0.0  # ... and the seconds it took

    def plan(self, stages: list[StageWork]) -> None:
        """The expected stages, once the data sizes are known (the `data` stage is running)."""
        self.stages = stages
        self.current = next((i for i, s in enumerate(stages) if s.stage == "data"), 0)

    @property
    def total(self) -> float:
        return sum(s.work for s in self.stages)

    def fraction(self) -> float | None:
        if not self.stages or self.total <= 0:
            return None
        stage = self.stages[self.current]
        inside = min(self.runs_done * stage.run_work() + self._run_work, stage.work)
        return min(1.0, (self.done + inside) / self.total)

    def eta_s(self) -> float | None:
        fraction = self.fraction()
        if fraction is None or self.measured_work <= 0 or self.measured_s <= 0:
            return None
        return (1.0 - fraction) * self.total / (self.measured_work / self.measured_s)

    # --- srcore callbacks ---------------------------------------------------------------------

    def on_stage(self, stage: str, detail: str | None = None) -> None:
        if self.stages:
            ahead = range(self.current + 1, len(self.stages))
            found = next((i for i in ahead if self.stages[i].stage == stage), None)
            if found is not None:  # the stages in between did not run (cached, resumed)
                self.done += sum(s.work for s in self.stages[self.current : found])
                self.current, self.runs_done, self._run_work = found, 0, 0.0
                self._run_key, self._last = None, None
        self.inner.on_stage(stage, detail)

    def on_progress(self, progress: Progress) -> None:
        key = (progress.stage, progress.detail)
        if self.stages:
            stage = self.stages[self.current]
            if self._run_key is not None and key != self._run_key:
                self.runs_done += 1  # the next run of this stage (a sparsity, an IMP round)
                self._run_work = 0.0
            self._run_key = key
            if stage.runs:
                done_steps = min(progress.step, stage.steps) * stage.step_work
                evals = min(progress.evaluations_done, stage.evaluations) * stage.eval_work
                running = 0.0
                if progress.phase == "evaluate" and progress.eval_examples_total:
                    running = progress.eval_examples_done / progress.eval_examples_total
                self._run_work = min(
                    done_steps + evals + running * stage.eval_work, stage.run_work()
                )
            now, work = self.clock(), self.done_work()
            if self._last is not None and self._last[2] == key and work >= self._last[1]:
                self.measured_work += work - self._last[1]
                self.measured_s += now - self._last[0]
            self._last = (now, work, key)
        self.inner.on_progress(
            progress.with_(
                job_fraction=self.fraction(),
                job_eta_s=self.eta_s(),
                elapsed_s=self.clock() - self.started,
            )
        )

    def done_work(self) -> float:
        fraction = self.fraction()
        return 0.0 if fraction is None else fraction * self.total

    def on_metrics(self, curve: CurveId, step: int, metrics: dict[str, Any]) -> None:
        self.inner.on_metrics(curve, step, metrics)

    def on_dense_point(self, point: DensePoint) -> None:
        self.inner.on_dense_point(point)

    def on_unit(self, unit: ResultUnit) -> None:
        self.inner.on_unit(unit)

    def on_checkpoint(self, stage: str, step: int, path: Path) -> None:
        self.inner.on_checkpoint(stage, step, path)

    def should_stop(self) -> bool:
        return self.inner.should_stop()
