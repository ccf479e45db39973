"""Expected work of a job's stages, counted in example-forwards (`progress` turns it into the
job's fraction and ETA; each pruning method sizes its own search stage with `WorkModel`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from srcore.training.budget import batches_per_epoch, evaluation_interval, planned_steps

TRAIN_COST = 3.0  # forwards per training example (forward + backward ≈ 3 forwards)


@dataclass(frozen=True)
class StageWork:
    """One `on_stage` the job is expected to announce, with its work.

    A training stage is `runs` runs (mask training: one per sparsity; IMP: one per round) of
    `steps` steps and `evaluations` evaluations each."""

    stage: str
    work: float
    runs: int = 0
    steps: int = 0
    evaluations: int = 0
    step_work: float = 0.0
    eval_work: float = 0.0

    def run_work(self) -> float:
        return self.steps * self.step_work + self.evaluations * self.eval_work


@dataclass(frozen=True)
class WorkModel:
    """The sizes a job's stage work follows from: its training set, its evaluation sets, the
    batch size and the evaluation interval of its spec."""

    train_examples: int
    eval_examples: int
    batch_size: int
    eval_every: int | None

    @property
    def step_work(self) -> float:
        return TRAIN_COST * min(self.batch_size, max(self.train_examples, 1))

    def steps(self, epochs: float, max_steps: int | None) -> int:
        """Optimizer steps of a run of `epochs` (or `max_steps`) on the training set."""
        batches = batches_per_epoch(self.train_examples, self.batch_size)
        return planned_steps(epochs, batches, max_steps)

    def training(self, stage: str, steps: int, runs: int = 1, end: int | None = None) -> StageWork:
        """`runs` training runs of `steps` steps (stopping at `end` when it comes first)."""
        end = steps if end is None else min(end, steps)
        evaluations = math.ceil(end / evaluation_interval(steps, self.eval_every))
        run = StageWork(stage, 0.0, runs, end, evaluations, self.step_work, self.eval_examples)
        return replace(run, work=runs * run.run_work())

    def evaluations(self, stage: str, count: int) -> StageWork:
        """`count` evaluations without training (one-shot pruning)."""
        return StageWork(stage, count * self.eval_examples)
