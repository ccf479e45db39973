"""Exact "prune the k lowest values" selection with deterministic tie-breaking.

Shared by magnitude pruning (values = |W|) and the mask-training threshold reset
(values = scores), so both give exactly k zeros per matrix.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def pruned_count(numel: int, sparsity: float) -> int:
    """k = round(sparsity × n), halves rounded up (float noise such as 0.3 × 10 is absorbed)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    return min(numel, math.floor(round(sparsity * numel, 6) + 0.5))


def lowest_k_split(values: Tensor, k: int) -> tuple[Tensor, Tensor | None]:
    """A threshold t and an optional tie mask such that keeping `(values > t) | tie_keep`
    prunes exactly the k lowest values.

    t is the k-th smallest value. When values equal to t straddle the cut, the tied entries with
    the lowest flat indices are pruned and `tie_keep` marks the tied entries that stay.
    """
    flat = values.detach().reshape(-1)
    n = flat.numel()
    if k <= 0:
        return torch.tensor(-math.inf, dtype=flat.dtype, device=flat.device), None
    if k >= n:
        return flat.max(), None
    t = torch.kthvalue(flat, k).values
    below = int((flat < t).sum())
    at = flat == t
    n_at = int(at.sum())
    if below + n_at == k:
        return t, None
    tie_keep = at & (at.cumsum(0) > k - below)
    return t, tie_keep.view_as(values)


def keep_from_split(values: Tensor, t: Tensor, tie_keep: Tensor | None) -> Tensor:
    keep = values > t
    if tie_keep is not None:
        keep |= tie_keep & (values == t)
    return keep


def keep_all_but_lowest(values: Tensor, k: int) -> Tensor:
    """Bool mask (True = kept) with exactly the k lowest values dropped; ties by flat index."""
    t, tie_keep = lowest_k_split(values, k)
    return keep_from_split(values.detach(), t, tie_keep)
