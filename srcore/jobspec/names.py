"""The names the spec accepts for what grows: debiasing losses, evaluation metrics, pruning
methods. Torch-free: the spec's literals derive from these tuples, and the implementations
(`srcore.losses`, `srcore.evaluation`, `srcore.pipeline.run`) register under them; a test
keeps each registry and its names in step.

Adding a loss: its name and needs here, its implementation in a file of `srcore/losses/`
registering with `@register_loss`, and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LossNeeds:
    """What a debiasing loss reads besides logits and gold labels."""

    bias: bool = False  # the bias model's probabilities b
    teacher: bool = False  # a teacher's probabilities t (conf_reg: the dense CE model)


LOSS_NEEDS: dict[str, LossNeeds] = {
    "none": LossNeeds(),
    "poe": LossNeeds(bias=True),
    "reweight": LossNeeds(bias=True),
    "conf_reg": LossNeeds(bias=True, teacher=True),
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_NEEDS)
METRIC_NAMES: tuple[str, ...] = ("accuracy", "f1", "hans", "paws", "fever_symmetric")
METHOD_NAMES: tuple[str, ...] = ("mask_training", "imp", "magnitude")

LossName = Literal[LOSS_NAMES]  # type: ignore[valid-type]
MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
MethodName = Literal[METHOD_NAMES]  # type: ignore[valid-type]


def loss_needs(name: str) -> LossNeeds:
    try:
        return LOSS_NEEDS[name]
    except KeyError:
        raise ValueError(f"unknown loss '{name}'; known: {', '.join(LOSS_NAMES)}") from None
