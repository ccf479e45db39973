"""How long a training run is and how often it evaluates: the one rule the trainer runs by and
the progress estimate, the gradual-sparsity ramp and the web form's preset sizes plan with
(torch-free: the API imports it)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from srcore.jobspec.names import loss_needs, method_facts

if TYPE_CHECKING:
    from srcore.jobspec.spec import JobSpec

EVALUATIONS_PER_RUN = 10  # when `eval_every` is not set


def batches_per_epoch(examples: int, batch_size: int, drop_last: bool = False) -> int:
    return examples // batch_size if drop_last else -(-examples // batch_size)


def planned_steps(epochs: float, batches: int, max_steps: int | None) -> int:
    """Optimizer steps of a run: `max_steps` when set, else `epochs` passes of `batches`."""
    if max_steps is not None:
        return max_steps
    return max(1, math.ceil(epochs * batches))


def evaluation_interval(total_steps: int, eval_every: int | None) -> int:
    """Steps between evaluations: `eval_every`, else about EVALUATIONS_PER_RUN per run."""
    return eval_every or max(1, total_steps // EVALUATIONS_PER_RUN)


@dataclass(frozen=True)
class TrainingRuns:
    """`runs` training runs of one stage, each `steps` steps with `evaluations` evaluations."""

    stage: str  # "dense", "search", "retrain"
    runs: int
    steps: int
    evaluations: int


def run_evaluations(steps: int, eval_every: int | None, end: int | None = None) -> int:
    """Evaluations of a run of `steps` steps (stopped at `end` when it comes first)."""
    end = steps if end is None else min(end, steps)
    return math.ceil(end / evaluation_interval(steps, eval_every))


def training_runs(spec: JobSpec, train_examples: int) -> list[TrainingRuns]:
    """The training runs a job makes on `train_examples` training examples, all seeds: the
    sizes `srcore.pipeline.progress.expected_work` plans with (a test holds the two equal),
    without torch, so the API can state a job's size before it is submitted."""
    t, d, p = spec.training, spec.dense, spec.pruning
    batches = batches_per_epoch(train_examples, t.batch_size)
    dense_steps = planned_steps(d.epochs, batches, d.max_steps)
    dense = TrainingRuns("dense", 1, min(dense_steps, d.stop_at_step or dense_steps),
                         run_evaluations(dense_steps, t.eval_every, d.stop_at_step))  # fmt: skip
    from_dense = p.scenario == "finetuned" or (
        p.scenario == "pretrained_retrain" and method_facts(p.method).retrain_mask_from == "dense"
    )
    losses = [spec.debias.loss, spec.retrain_loss]
    dense_teacher = any(loss_needs(x).teacher for x in losses) and (
        spec.debias.teacher.source == "dense"
    )
    per_seed: list[TrainingRuns] = []
    if dense_teacher:
        per_seed.append(dense)
    if (from_dense or dense_teacher) and not (dense_teacher and d.loss == "none"):
        per_seed.append(dense)  # (a CE dense model that is also the teacher is trained once)
    if p.method == "mask_training":
        steps = planned_steps(t.epochs, batches, t.max_steps)
        per_seed.append(
            TrainingRuns("search", len(p.sparsities), steps, run_evaluations(steps, t.eval_every))
        )
    elif p.method == "imp":
        steps = planned_steps(t.imp_round_epochs, batches, None)
        rounds = round(max(p.sparsities) / p.imp_rate)
        per_seed.append(TrainingRuns("search", rounds, steps, run_evaluations(steps, t.eval_every)))
    if p.scenario == "pretrained_retrain":
        evaluations = run_evaluations(dense_steps, t.eval_every)
        per_seed.append(TrainingRuns("retrain", len(p.sparsities), dense_steps, evaluations))
    seeds = len(t.seeds)
    return [TrainingRuns(r.stage, r.runs * seeds, r.steps, r.evaluations) for r in per_seed]
