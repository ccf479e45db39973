"""Trainer hooks for the search methods.

The Trainer calls `after_optimizer_step(step)` after every optimizer step, `before_evaluate(step)`
before each evaluation (its return value is recorded with that evaluation), `snapshot()` when an
evaluation becomes the best so far, and `state_dict()` / `load_state_dict()` for exact resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from srcore.pruning.magnitude import apply_masks
from srcore.pruning.mask_training import ScoreMasker
from srcore.pruning.schedules import SparsitySchedule
from srcore.pruning.targets import get_weight


class MaskTrainingHooks:
    """τ reset before every evaluation (and, on a gradual schedule, after every step)."""

    def __init__(self, masker: ScoreMasker, schedule: SparsitySchedule) -> None:
        self.masker = masker
        self.schedule = schedule

    def after_optimizer_step(self, step: int) -> None:
        if self.schedule.varies:
            self.masker.reset_thresholds(self.schedule.sparsity_at(step))

    def before_evaluate(self, step: int) -> dict[str, Any]:
        sparsity = self.schedule.sparsity_at(step)
        self.masker.reset_thresholds(sparsity)
        # Gradual runs: only evaluations at the final sparsity may be selected.
        return {"sparsity": sparsity, "selectable": self.schedule.is_final(step)}

    def snapshot(self) -> dict[str, Tensor]:
        """The bit masks just evaluated (CPU bool)."""
        return {name: keep.cpu() for name, keep in self.masker.current_masks().items()}

    def state_dict(self) -> dict[str, Any]:
        return self.masker.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.masker.load_state_dict(state)


class ImpHooks:
    """Keeps pruned weights at zero while the survivors train.

    Their gradients are masked as they are computed (so gradient clipping sees only the
    survivors) and the weights are re-zeroed after every optimizer step (weight decay,
    optimizer state). Call `close()` after the round.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor], sparsity: float) -> None:
        self.model = model
        self.masks = dict(masks)
        self.sparsity = sparsity
        self._handles: list[RemovableHandle] = []
        self._install()

    def _install(self) -> None:
        self.close()
        for name, keep in self.masks.items():
            weight = get_weight(self.model, name)
            factor = keep.to(weight.device, weight.dtype)
            if weight.requires_grad:
                self._handles.append(weight.register_hook(lambda g, f=factor: g * f))
        apply_masks(self.model, self.masks)

    def after_optimizer_step(self, step: int) -> None:
        apply_masks(self.model, self.masks)

    def before_evaluate(self, step: int) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "selectable": True}

    def snapshot(self) -> dict[str, Tensor]:
        return {name: keep.cpu() for name, keep in self.masks.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "masks": self.snapshot()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.masks = {name: keep.to(torch.bool) for name, keep in state["masks"].items()}
        self.sparsity = float(state["sparsity"])
        self._install()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
