"""The default learning rate of mask-training scores: it follows the step budget.

The paper trains scores at lr 5e-5 for 5 epochs of full MNLI at batch 32 (about 61,360 steps).
Adam moves each score by about lr per step; over a few hundred steps lr 5e-5 barely carries a
score across τ and the search ends where magnitude pruning started. Scaling lr by the step
ratio (the same total movement) makes the per-step jumps so large that gradient noise decides
the mask. The rule here keeps the paper's *random-walk* movement, lr·sqrt(steps), so the
noise a score sees is the paper's while its consistent drift still grows with the budget:

    lr(steps) = 5e-5 · sqrt(61,360 / steps)        (5e-5 at the paper's budget)

An explicit `training.learning_rate` always wins.
"""

from __future__ import annotations

import math

PAPER_SCORE_LR = 5e-5
PAPER_MASK_STEPS = 61_360  # 5 epochs × ceil(392,702 / 32)
WEIGHT_LR = 5e-5  # IMP survivors: the paper's fine-tuning rate, not budget-scaled


def budget_score_lr(total_steps: int) -> float:
    """The default score learning rate for a mask-training run of `total_steps` steps."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")
    return PAPER_SCORE_LR * math.sqrt(PAPER_MASK_STEPS / total_steps)


def search_learning_rate(explicit: float | None, method: str, total_steps: int) -> float:
    """The search stage's learning rate: the spec's, else the method's default."""
    if explicit is not None:
        return explicit
    if method == "mask_training":
        return budget_score_lr(total_steps)
    return WEIGHT_LR
