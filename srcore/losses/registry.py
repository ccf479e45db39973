"""The loss registry: each debiasing loss is one module of this package, its function decorated
`@register_loss("name", order=N, bias=…, teacher=…)`. The decorator's arguments are the loss's
declaration: `srcore.jobspec.names` reads them from the source without importing torch (the
spec's `LossName`), and registering checks the two readings agree. `debias_loss` dispatches
by the spec's name.
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


def register_loss(
    name: str, *, order: int, bias: bool = False, teacher: bool = False, description: str = ""
) -> Callable[[LossFunction], LossFunction]:
    """Register `function` as loss `name`; it takes (logits, labels), then bias_probs if
    `bias`, then teacher_probs if `teacher`. `order` places the name in the spec's list,
    `description` is the model card's line."""
    needs = LossNeeds(bias=bias, teacher=teacher)
    if name not in LOSS_NEEDS:
        raise ValueError(
            f"loss '{name}' is not declared: a loss is a module of srcore/losses/ whose "
            f'function is decorated @register_loss("{name}", order=...)'
        )
    if LOSS_NEEDS[name] != needs:
        raise ValueError(f"loss '{name}' registers {needs}, its file declares {LOSS_NEEDS[name]}")

    def register(function: LossFunction) -> LossFunction:
        if name in LOSSES:
            raise ValueError(f"loss '{name}' is registered twice")
        LOSSES[name] = Loss(name, function, needs)
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
