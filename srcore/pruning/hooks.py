"""Trainer hooks for the search methods.

They follow `srcore.training.TrainerHooks`: `after_optimizer_step(step)` after every optimizer
step (`step` counts finished steps), `before_evaluate(step)` before each evaluation (its dict is
recorded with the evaluation; "selectable": False keeps it out of selection), `snapshot()` when
an evaluation becomes the best so far, `state_dict()` / `load_state_dict()` for exact resume.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from srcore.pruning.mask_training import ScoreMasker
from srcore.pruning.schedules import SparsitySchedule
from srcore.pruning.targets import get_weight


class MaskTrainingHooks:
    """τ reset before every evaluation and, while a gradual schedule ramps, after every step.

    Between evaluations at a constant sparsity τ stays put, so the mask follows the scores.
    """

    def __init__(self, masker: ScoreMasker, schedule: SparsitySchedule) -> None:
        self.masker = masker
        self.schedule = schedule

    def after_optimizer_step(self, step: int) -> None:
        if not self.schedule.is_final(step - 1):  # ramping (up to the step that reaches s_f)
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
        # The scores and thresholds are saved with the model (they are its parametrizations);
        # the tie masks and the sparsity are not.
        return self.masker.state_dict(include_scores=False)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.masker.load_state_dict(state)


class FixedMaskHooks:
    """Keeps pruned weights at zero while the survivors train: IMP rounds, and the scenario-2
    retrain of a masked pre-trained model.

    Their gradients are zeroed as they are computed (so gradient clipping sees only the
    survivors) and the weights are re-zeroed after every optimizer step (weight decay,
    optimizer state). The masks follow the weights to their device. Call `close()` after the
    round.
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, Tensor], sparsity: float) -> None:
        self.model = model
        self.sparsity = sparsity
        self.masks = {name: keep.to(torch.bool) for name, keep in masks.items()}
        self._pruned: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        self._install()

    def _pruned_on(self, name: str, device: torch.device) -> Tensor:
        pruned = self._pruned.get(name)
        if pruned is None or pruned.device != device:
            pruned = ~self.masks[name].to(device)
            self._pruned[name] = pruned
        return pruned

    def _install(self) -> None:
        self.close()
        self._pruned = {}
        for name in self.masks:
            weight = get_weight(self.model, name)
            if weight.requires_grad:
                hook = self._gradient_hook(name)
                self._handles.append(weight.register_hook(hook))
        self._zero_pruned()

    def _gradient_hook(self, name: str) -> Callable[[Tensor], Tensor]:
        def hook(grad: Tensor) -> Tensor:
            return grad.masked_fill(self._pruned_on(name, grad.device), 0.0)

        return hook

    @torch.no_grad()
    def _zero_pruned(self) -> None:
        for name in self.masks:
            weight = get_weight(self.model, name)
            weight.masked_fill_(self._pruned_on(name, weight.device), 0.0)

    def after_optimizer_step(self, step: int) -> None:
        self._zero_pruned()

    def before_evaluate(self, step: int) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "selectable": True}

    def snapshot(self) -> None:
        """None: the Trainer keeps the model's weights (the mask is fixed within a round)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "masks": {n: m.cpu() for n, m in self.masks.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.masks = {name: keep.to(torch.bool) for name, keep in state["masks"].items()}
        self.sparsity = float(state["sparsity"])
        self._install()

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
