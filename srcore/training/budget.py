"""How long a training run is and how often it evaluates: the one rule the trainer runs by and
the progress estimate and the gradual-sparsity ramp plan with (torch-free)."""

from __future__ import annotations

import math

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
