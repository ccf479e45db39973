"""Debiasing losses (science.md): z main logits, y gold, b bias probabilities, t teacher.

All return the mean loss over the batch as a scalar tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("none", "poe", "reweight", "conf_reg")


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels)


def product_of_experts(
    logits: torch.Tensor, labels: torch.Tensor, bias_probs: torch.Tensor
) -> torch.Tensor:
    """CE(softmax(log_softmax(z) + log b), y); b is a constant."""
    log_bias = torch.log(bias_probs.float().clamp_min(1e-12))
    combined = F.log_softmax(logits.float(), dim=-1) + log_bias
    return F.cross_entropy(combined, labels)


def reweighted_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, bias_probs: torch.Tensor
) -> torch.Tensor:
    """Σ w·CE / Σ w with w = 1 - b_y."""
    weights = 1.0 - bias_probs.float().gather(1, labels[:, None]).squeeze(1)
    per_example = F.cross_entropy(logits.float(), labels, reduction="none")
    return (weights * per_example).sum() / weights.sum().clamp_min(1e-12)


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


def debias_loss(
    name: str,
    logits: torch.Tensor,
    labels: torch.Tensor,
    bias_probs: torch.Tensor | None = None,
    teacher_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch by the spec's loss name; bias/teacher tensors are (B, C) probabilities."""
    if name == "none":
        return cross_entropy(logits, labels)
    if bias_probs is None:
        raise ValueError(f"loss '{name}' needs bias probabilities")
    if name == "poe":
        return product_of_experts(logits, labels, bias_probs)
    if name == "reweight":
        return reweighted_cross_entropy(logits, labels, bias_probs)
    if name == "conf_reg":
        if teacher_probs is None:
            raise ValueError("loss 'conf_reg' needs teacher probabilities")
        return confidence_regularization(logits, labels, bias_probs, teacher_probs)
    raise ValueError(f"unknown loss '{name}'; known: {', '.join(LOSSES)}")
