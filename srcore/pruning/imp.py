"""Iterative magnitude pruning (IMP), optionally with rewinding (lottery ticket).

The caller's loop, one round per entry of `ImpSchedule.rounds`:

    pruner = IterativeMagnitudePruner(model, names, ImpSchedule(targets), rewind_to=state)
    for rnd in pruner.schedule.rounds:
        masks = pruner.prune(rnd)            # prune, rewind (if asked), zero the pruned weights
        hooks = pruner.training_hooks()      # keeps pruned weights at zero while training
        ...train with a NEW optimizer and the job's loss, passing `hooks`...
        hooks.close()
        if rnd.is_target: save `masks` (and evaluate / export the trained model)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from srcore.pruning.hooks import FixedMaskHooks
from srcore.pruning.magnitude import apply_masks, magnitude_masks
from srcore.pruning.targets import base_parameter_names

# (model, names, sparsity, previous=masks) → masks with `previous`'s pruned entries kept pruned
MaskSelect = Callable[..., dict[str, Tensor]]


@dataclass(frozen=True)
class ImpRound:
    index: int  # 1-based
    sparsity: float  # fraction of the ORIGINAL weights of each matrix that is pruned
    is_target: bool  # one of the requested sparsities: its mask is an artifact


class ImpSchedule:
    """Rounds at rate, 2·rate, … up to the largest target (10%, 20%, … by default)."""

    def __init__(self, targets: Sequence[float], rate: float = 0.1) -> None:
        if not targets:
            raise ValueError("IMP needs at least one target sparsity")
        if not 0.0 < rate < 1.0:
            raise ValueError(f"rate must lie in (0, 1), got {rate}")
        n_rounds = round(max(targets) / rate)
        self.rate = rate
        self.targets = sorted(targets)
        for target in self.targets:
            if not math.isclose(target / rate, round(target / rate), abs_tol=1e-6):
                raise ValueError(f"IMP reaches multiples of rate={rate}; {target} is not one")
        self.rounds = [
            ImpRound(
                index=i,
                sparsity=round(i * rate, 10),
                is_target=any(math.isclose(i * rate, t, abs_tol=1e-6) for t in self.targets),
            )
            for i in range(1, n_rounds + 1)
        ]


@torch.no_grad()
def base_weights_snapshot(model: nn.Module) -> dict[str, Tensor]:
    """CPU copies of the base model's parameters (not the head): what rewinding restores."""
    params = dict(model.named_parameters())
    return {name: params[name].detach().cpu().clone() for name in base_parameter_names(model)}


@torch.no_grad()
def rewind_weights(model: nn.Module, snapshot: Mapping[str, Tensor]) -> None:
    """Copy the snapshot back into the model in place; parameters outside it (head) are kept."""
    params = dict(model.named_parameters())
    missing = [name for name in snapshot if name not in params]
    if missing:
        raise KeyError(f"rewind snapshot names unknown parameters: {missing[:3]}")
    for name, value in snapshot.items():
        params[name].copy_(value)


class IterativeMagnitudePruner:
    """Holds the masks between rounds; each `prune` prunes `rate` more of the original weights."""

    def __init__(
        self,
        model: nn.Module,
        names: list[str],
        schedule: ImpSchedule,
        rewind_to: Mapping[str, Tensor] | None = None,
        select: MaskSelect | None = None,
    ) -> None:
        self.model = model
        self.names = list(names)
        self.schedule = schedule
        self.rewind_to = rewind_to
        # How a round's masks are chosen (default: per weight by magnitude; structured: units)
        self.select: MaskSelect = select or magnitude_masks
        self.masks: dict[str, Tensor] | None = None
        self.sparsity = 0.0

    def prune(self, rnd: ImpRound) -> dict[str, Tensor]:
        """Prune to `rnd.sparsity` by the current magnitudes among survivors; rewind the base
        model if asked (after pruning: the mask comes from the trained weights); zero the
        pruned weights."""
        self.masks = self.select(self.model, self.names, rnd.sparsity, previous=self.masks)
        self.sparsity = rnd.sparsity
        if self.rewind_to is not None:
            rewind_weights(self.model, self.rewind_to)
        apply_masks(self.model, self.masks)
        return self.masks

    def state_dict(self) -> dict[str, Any]:
        """Masks (CPU bool) and sparsity reached: with the round index, what a resume needs."""
        masks = {n: m.cpu().clone() for n, m in (self.masks or {}).items()}
        return {"sparsity": self.sparsity, "masks": masks}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the masks and zero the pruned weights of the (already restored) model."""
        self.sparsity = float(state["sparsity"])
        self.masks = {n: m.to(torch.bool) for n, m in state["masks"].items()} or None
        if self.masks is not None:
            apply_masks(self.model, self.masks)

    def training_hooks(self) -> FixedMaskHooks:
        if self.masks is None:
            raise RuntimeError("call prune() before training a round")
        return FixedMaskHooks(self.model, self.masks, self.sparsity)
