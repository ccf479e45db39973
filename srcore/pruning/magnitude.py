"""One-shot and iterative magnitude masks, and applying masks to a model's weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from srcore.pruning.selection import keep_all_but_lowest, pruned_count
from srcore.pruning.targets import get_weight

Masks = dict[str, Tensor]


def _weight(source: nn.Module | Mapping[str, Tensor], name: str) -> Tensor:
    if isinstance(source, nn.Module):
        return get_weight(source, name)
    return source[name]


@torch.no_grad()
def magnitude_masks(
    model_or_weights: nn.Module | Mapping[str, Tensor],
    names: list[str],
    sparsity: float,
    previous: Mapping[str, Tensor] | None = None,
) -> Masks:
    """Per matrix, exactly round(sparsity × n) zeros at the smallest |W| (True = kept).

    With `previous` (IMP), sparsity counts against the ORIGINAL number of weights: the weights
    `previous` already pruned stay pruned and the rest of the quota comes from the survivors.
    Ties are broken by flat index (the lower index is pruned first).
    """
    masks: Masks = {}
    for name in names:
        weight = _weight(model_or_weights, name)
        values = weight.detach().abs().float()
        k = pruned_count(values.numel(), sparsity)
        if previous is not None:
            old = previous[name].to(values.device)
            already = int((~old).sum())
            if already > k:
                raise ValueError(
                    f"{name}: {already} weights already pruned, more than the {k} that "
                    f"sparsity {sparsity} allows"
                )
            values = values.masked_fill(~old, -1.0)  # below every |W|: pruned first
        masks[name] = keep_all_but_lowest(values, k)
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Zero the pruned weights in place (plain, unparametrized model)."""
    for name, keep in masks.items():
        weight = get_weight(model, name)
        if weight.shape != keep.shape:
            raise ValueError(f"{name}: mask shape {tuple(keep.shape)} != {tuple(weight.shape)}")
        weight.masked_fill_(~keep.to(weight.device, torch.bool), 0.0)
