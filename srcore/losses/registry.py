"""The loss registry: each debiasing loss registers its function under a name of
`srcore.jobspec.names.LOSS_NEEDS`, which declares what it reads besides logits and labels (the
bias model's probabilities, a teacher's). `debias_loss` dispatches by the spec's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from srcore.jobspec.names import LOSS_NEEDS, LossNeeds, loss_needs

# fn(logits, labels, [bias_probs,] [teacher_probs]) -> mean loss over the batch
LossFunction = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Loss:
    name: str
    function: LossFunction
    needs: LossNeeds


LOSSES: dict[str, Loss] = {}


def register_loss(name: str) -> Callable[[LossFunction], LossFunction]:
    """Register `function` as loss `name`; it takes (logits, labels), then bias_probs if the
    name's LossNeeds say bias, then teacher_probs if they say teacher."""
    if name not in LOSS_NEEDS:
        raise ValueError(f"loss '{name}' is not declared in srcore.jobspec.names.LOSS_NEEDS")

    def register(function: LossFunction) -> LossFunction:
        if name in LOSSES:
            raise ValueError(f"loss '{name}' is registered twice")
        LOSSES[name] = Loss(name, function, LOSS_NEEDS[name])
        return function

    return register


def debias_loss(
    name: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
    bias_probs: torch.Tensor | None = None,
    teacher_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss `name` of the batch; bias/teacher tensors are (B, C) probabilities."""
    needs = loss_needs(name)  # unknown names: ValueError listing the known ones
    args = [logits, labels]
    if needs.bias:
        if bias_probs is None:
            raise ValueError(f"loss '{name}' needs bias probabilities")
        args.append(bias_probs)
    if needs.teacher:
        if teacher_probs is None:
            raise ValueError(f"loss '{name}' needs teacher probabilities")
        args.append(teacher_probs)
    return LOSSES[name].function(*args)
