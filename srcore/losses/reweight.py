"""reweight: cross-entropy weighted by how badly the bias model does on each example."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srcore.losses.registry import register_loss


@register_loss("reweight", order=2, bias=True, description="example reweighting by the bias model")
def reweighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, bias_probs: torch.Tensor
) -> torch.Tensor:
    """Σ w·CE / Σ w with w = 1 - b_y."""
    weights = 1.0 - bias_probs.float().gather(1, labels[:, None]).squeeze(1)
    per_example = F.cross_entropy(logits.float(), labels, reduction="none")
    return (weights * per_example).sum() / weights.sum().clamp_min(1e-12)
