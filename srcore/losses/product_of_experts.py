"""poe: product of experts with the bias model (Clark et al. 2019)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srcore.losses.registry import register_loss


@register_loss("poe", order=1, bias=True, description="product of experts with a bias model")
def product_of_experts(
    logits: torch.Tensor, labels: torch.Tensor, bias_probs: torch.Tensor
) -> torch.Tensor:
    """CE(softmax(log_softmax(z) + log b), y); b is a constant."""
    log_bias = torch.log(bias_probs.float().clamp_min(1e-12))
    combined = F.log_softmax(logits.float(), dim=-1) + log_bias
    return F.cross_entropy(combined, labels)
