"""Sparsity report: per matrix, over the masked matrices, over the whole model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

_PARAMETRIZATION = ".parametrizations."


def model_parameter_count(model: nn.Module) -> int:
    """All parameters of the model itself; mask-training scores (if attached) are not counted."""
    total = 0
    for name, param in model.named_parameters():
        if _PARAMETRIZATION in name and not name.endswith(".original"):
            continue  # a score tensor of a ScoreMask parametrization
        total += param.numel()
    return total


def sparsity_report(masks: Mapping[str, Tensor], model: nn.Module | int) -> dict[str, Any]:
    """Zeros counted from the masks (False = pruned).

    `sparsity_over_masked_weights` = pruned / weights of the masked matrices;
    `sparsity_over_all_parameters` = pruned / every parameter of the model (embeddings, biases,
    LayerNorm and head included): `model_parameter_count(model)`, or `model` if it is a count.
    """
    model_parameters = model if isinstance(model, int) else model_parameter_count(model)
    per_matrix: dict[str, dict[str, float | int]] = {}
    zeros = 0
    numel = 0
    for name, keep in masks.items():
        n = keep.numel()
        z = n - int(keep.sum())
        per_matrix[name] = {"zeros": z, "numel": n, "sparsity": z / n}
        zeros += z
        numel += n
    if model_parameters < numel:
        raise ValueError(f"model_parameters={model_parameters} < masked weights {numel}")
    return {
        "per_matrix": per_matrix,
        "pruned_weights": zeros,
        "masked_weights": numel,
        "model_parameters": model_parameters,
        "sparsity_over_masked_weights": zeros / numel if numel else 0.0,
        "sparsity_over_all_parameters": zeros / model_parameters if model_parameters else 0.0,
    }
