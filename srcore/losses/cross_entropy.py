"""none: plain cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srcore.losses.registry import register_loss


@register_loss("none", order=0, description="cross-entropy (no debiasing)")
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)
