"""Mask training: frozen weights, learned real-valued scores, straight-through gradient.

Each pruned matrix gets a `ScoreMask` parametrization (torch.nn.utils.parametrize), so the
unmodified transformers model class runs and sees `W ⊙ 1[S > τ]` as its weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from srcore.pruning.selection import (
    keep_all_but_lowest,
    keep_from_split,
    lowest_k_split,
    lowest_k_splits,
    pruned_count,
)

ScoreInit = Literal["hard", "soft"]


class StraightThroughMask(torch.autograd.Function):
    """forward: W ⊙ 1[keep(S)]; backward: ∂L/∂S = ∂L/∂W_eff ⊙ W (the mask is skipped)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, weight: Tensor, scores: Tensor, threshold: Tensor, tie_keep: Tensor | None
    ) -> Tensor:
        keep = keep_from_split(scores, threshold, tie_keep)
        ctx.save_for_backward(weight, keep)
        ctx.scores_dtype = scores.dtype
        return weight * keep.to(weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        weight, keep = ctx.saved_tensors
        grad_weight = grad_out * keep.to(grad_out.dtype) if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            grad_scores = (grad_out * weight).to(ctx.scores_dtype)
        return grad_weight, grad_scores, None, None


class ScoreMask(nn.Module):
    """The parametrization of one matrix: holds its scores S, threshold τ and tie mask."""

    def __init__(self, scores: Tensor, threshold: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.register_buffer(
            "threshold", torch.tensor(threshold, dtype=scores.dtype, device=scores.device)
        )
        # Not in the model's state_dict (its presence varies); ScoreMasker.state_dict has it.
        self.register_buffer("tie_keep", None, persistent=False)

    def forward(self, weight: Tensor) -> Tensor:
        return StraightThroughMask.apply(weight, self.scores, self.threshold, self.tie_keep)

    @torch.no_grad()
    def keep_mask(self) -> Tensor:
        return keep_from_split(self.scores, self.threshold, self.tie_keep)

    @torch.no_grad()
    def reset(self, sparsity: float) -> None:
        """τ := the k-th smallest score; ties at τ are cut by index so exactly k are pruned."""
        k = pruned_count(self.scores.numel(), sparsity)
        self.set_split(*lowest_k_split(self.scores, k))

    @torch.no_grad()
    def set_split(self, threshold: Tensor, tie_keep: Tensor | None) -> None:
        self.threshold.copy_(threshold)
        self.tie_keep = tie_keep


def initial_scores(weight: Tensor, sparsity: float, init: ScoreInit, threshold: float) -> Tensor:
    """hard: 0 for the smallest s·n weights by |W|, 2τ for the rest; soft: |W|."""
    magnitude = weight.detach().abs().float()
    if init == "soft":
        return magnitude.clone()
    if init != "hard":
        raise ValueError(f"unknown score init {init!r}")
    keep = keep_all_but_lowest(magnitude, pruned_count(magnitude.numel(), sparsity))
    return keep.float() * (2.0 * threshold)


def _split_name(name: str) -> tuple[str, str]:
    module_path, _, attr = name.rpartition(".")
    return module_path, attr


class ScoreMasker:
    """Attaches scores to `names` of `model`, freezes every model weight, and manages τ.

    `sparsity` is the starting sparsity (the initial sparsity of a gradual schedule). With the
    hard init the starting mask is exact at τ = `threshold`; with the soft init τ is reset
    per matrix at once.
    """

    def __init__(
        self,
        model: nn.Module,
        names: list[str],
        sparsity: float,
        *,
        init: ScoreInit = "hard",
        threshold: float = 0.01,
    ) -> None:
        self.model = model
        self.names = list(names)
        self.sparsity = sparsity
        self._requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        for param in model.parameters():
            param.requires_grad_(False)
        self._masks: dict[str, Any] = {}  # name → ScoreMask (or a structured variant)
        for name in self.names:
            module_path, attr = _split_name(name)
            module = model.get_submodule(module_path)
            if parametrize.is_parametrized(module, attr):
                raise ValueError(f"{name} is already parametrized")
            weight = getattr(module, attr)
            param = self._make_mask(name, weight, sparsity, init, threshold)
            parametrize.register_parametrization(module, attr, param)
            self._masks[name] = param
        if init == "soft":
            self.reset_thresholds(sparsity)

    def _make_mask(
        self, name: str, weight: Tensor, sparsity: float, init: ScoreInit, threshold: float
    ) -> nn.Module:
        """The parametrization of matrix `name` (one score per weight here)."""
        return ScoreMask(initial_scores(weight, sparsity, init, threshold), threshold)

    def parameters(self) -> list[nn.Parameter]:
        """The scores: the only trainable tensors (give these to the optimizer)."""
        return [m.scores for m in self._masks.values()]

    def scores(self) -> dict[str, Tensor]:
        return {name: m.scores for name, m in self._masks.items()}

    def reset_thresholds(self, sparsity: float | None = None) -> None:
        """Per matrix, τ := k-th smallest score so that sparsity is exactly `sparsity`."""
        if sparsity is not None:
            self.sparsity = sparsity
        masks = list(self._masks.values())
        # One batched selection for all matrices (one host sync on a GPU, not two per matrix).
        ks = [pruned_count(m.scores.numel(), self.sparsity) for m in masks]
        splits = lowest_k_splits([m.scores for m in masks], ks)
        for mask, (threshold, tie_keep) in zip(masks, splits, strict=True):
            mask.set_split(threshold, tie_keep)

    def current_masks(self) -> dict[str, Tensor]:
        """name → bool tensor (True = kept), on the scores' device."""
        return {name: m.keep_mask() for name, m in self._masks.items()}

    def state_dict(self, include_scores: bool = True) -> dict[str, Any]:
        """Scores, thresholds and tie masks (CPU copies): everything an exact resume needs.

        The scores and thresholds also live in the model's own state_dict (the
        parametrizations); `include_scores=False` leaves the scores out for a caller that
        saves the model anyway.
        """
        state: dict[str, Any] = {
            "sparsity": self.sparsity,
            "thresholds": {n: float(m.threshold) for n, m in self._masks.items()},
            "tie_keep": {
                n: m.tie_keep.cpu().clone()
                for n, m in self._masks.items()
                if m.tie_keep is not None
            },
        }
        if include_scores:
            state["scores"] = {n: m.scores.detach().cpu().clone() for n, m in self._masks.items()}
        return state

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """In place, so an optimizer holding the score parameters stays valid. Without
        "scores" in `state` the current scores are kept (restored with the model)."""
        self.sparsity = float(state["sparsity"])
        ties = state.get("tie_keep", {})
        scores = state.get("scores")
        for name, mask in self._masks.items():
            if scores is not None:
                mask.scores.copy_(scores[name])
            mask.threshold.fill_(state["thresholds"][name])
            tie = ties.get(name)
            mask.tie_keep = None if tie is None else tie.to(mask.scores.device)

    @torch.no_grad()
    def remove(self, leave_pruned: bool = True) -> dict[str, Tensor]:
        """Detach the parametrizations: a plain model again, weights' requires_grad restored.

        With `leave_pruned` the pruned weights are zeroed. Returns the final masks.
        """
        masks = self.current_masks()
        for name in self.names:
            module_path, attr = _split_name(name)
            module = self.model.get_submodule(module_path)
            parametrize.remove_parametrizations(module, attr, leave_parametrized=False)
            if leave_pruned:
                getattr(module, attr).masked_fill_(~masks[name], 0.0)
        for name, param in self.model.named_parameters():
            param.requires_grad_(self._requires_grad.get(name, param.requires_grad))
        self._masks = {}
        return masks
