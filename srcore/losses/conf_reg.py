"""conf_reg: confidence regularisation, a teacher's probabilities scaled by the bias."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srcore.losses.registry import register_loss


@register_loss(
    "conf_reg",
    order=3,
    bias=True,
    teacher=True,
    description="confidence regularisation (self-distillation from a dense teacher)",
)
def confidence_regularization(
    logits: torch.Tensor,
    labels: torch.Tensor,
    bias_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
) -> torch.Tensor:
    """-Σ s_j log p_j with s_j ∝ t_j^(1 - b_y) (Utama et al. 2020)."""
    exponent = 1.0 - bias_probs.float().gather(1, labels[:, None])  # (B, 1)
    scaled = teacher_probs.float().clamp_min(1e-12) ** exponent
    scaled = scaled / scaled.sum(dim=-1, keepdim=True)
    return -(scaled * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean()
