"""Sparsity over the steps of a mask-training run: constant, or the paper's cubic ramp."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


def cubic_sparsity(step: int, total: int, s_i: float, s_f: float) -> float:
    """s(step) = s_f + (s_i − s_f)(1 − step/total)³, held at s_f from `total` on."""
    if total <= 0:
        return s_f
    progress = min(max(step / total, 0.0), 1.0)
    return s_f + (s_i - s_f) * (1.0 - progress) ** 3


class SparsitySchedule(Protocol):
    final: float

    def sparsity_at(self, step: int) -> float: ...

    def is_final(self, step: int) -> bool: ...


@dataclass(frozen=True)
class ConstantSparsity:
    final: float

    def sparsity_at(self, step: int) -> float:
        return self.final

    def is_final(self, step: int) -> bool:
        return True


@dataclass(frozen=True)
class CubicSparsity:
    """From `initial` at step 0 to `final` at `ramp_steps`, then constant.

    Only evaluations at the final sparsity may be selected (`is_final`), so `ramp_steps` should
    end before the selection window (the last 30% of training by default).
    """

    initial: float
    final: float
    ramp_steps: int

    def sparsity_at(self, step: int) -> float:
        return cubic_sparsity(step, self.ramp_steps, self.initial, self.final)

    def is_final(self, step: int) -> bool:
        return step >= self.ramp_steps


def at_sparsity(recorded: float, target: float) -> bool:
    """Whether an evaluation recorded at `recorded` sparsity counts as `target` (selection)."""
    return math.isclose(recorded, target, abs_tol=1e-9)
