"""Exact "prune the k lowest values" selection with deterministic tie-breaking.

Shared by magnitude pruning (values = |W|) and the mask-training threshold reset
(values = scores), so both give exactly k zeros per matrix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor


def pruned_count(numel: int, sparsity: float) -> int:
    """k = round(sparsity × n), halves rounded up (float noise such as 0.3 × 10 is absorbed)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    return min(numel, math.floor(round(sparsity * numel, 6) + 0.5))


Split = tuple[Tensor, "Tensor | None"]

# Elements sorted at once on an accelerator: bounds the transient memory of a batched sort
# (values, int64 indices, the tie cumsum) to about 1 GB.
SORT_CHUNK_ELEMENTS = 1 << 25


def lowest_k_split(values: Tensor, k: int) -> Split:
    """A threshold t and an optional tie mask such that keeping `(values > t) | tie_keep`
    prunes exactly the k lowest values.

    t is the k-th smallest value. When values equal to t straddle the cut, the tied entries with
    the lowest flat indices are pruned and `tie_keep` marks the tied entries that stay.
    """
    return lowest_k_splits([values], [k])[0]


def lowest_k_splits(
    values: Sequence[Tensor], ks: Sequence[int], *, sort: bool | None = None
) -> list[Split]:
    """`lowest_k_split` of every (values[i], ks[i]) pair, with the same results.

    On the CPU each matrix is selected by numpy's introselect. Elsewhere (CUDA) matrices of
    the same size are stacked and sorted row-wise in one call, and the whole batch costs
    one host synchronisation: `torch.kthvalue` per matrix ran one thread block per matrix
    and synchronised twice per matrix, slow for a reset of every matrix of a model.
    `sort` forces the batched sort (True) or numpy (False, CPU tensors only).
    """
    if len(values) != len(ks):
        raise ValueError(f"{len(values)} tensors but {len(ks)} counts")
    out: list[Split | None] = [None] * len(values)
    # Same size and same k: one sort, and k stays a Python int (a tensor of ks would cost a
    # host-to-device copy, itself a synchronisation).
    groups: dict[tuple[int, int, torch.dtype, torch.device], list[int]] = {}
    for i, (tensor, k) in enumerate(zip(values, ks, strict=True)):
        flat = tensor.detach().reshape(-1)
        n = flat.numel()
        if k <= 0:
            out[i] = (torch.tensor(-math.inf, dtype=flat.dtype, device=flat.device), None)
        elif k >= n:
            out[i] = (flat.max(), None)
        elif (flat.device.type == "cpu") if sort is None else not sort:
            out[i] = _split_cpu(flat, k, tensor.shape)
        else:
            groups.setdefault((n, k, flat.dtype, flat.device), []).append(i)
    for (n, k, _dtype, _device), members in groups.items():
        rows = max(1, SORT_CHUNK_ELEMENTS // n)
        for start in range(0, len(members), rows):
            chunk = members[start : start + rows]
            splits = _split_sorted(
                torch.stack([values[i].detach().reshape(-1) for i in chunk]),
                k,
                [values[i].shape for i in chunk],
            )
            for i, split in zip(chunk, splits, strict=True):
                out[i] = split
    return out  # type: ignore[return-value]


def _split_torch(flat: Tensor, k: int, shape: torch.Size) -> Split:
    """The accelerator path for one flat tensor (any device torch sorts on)."""
    return _split_sorted(flat.reshape(1, -1), k, [shape])[0]


def _split_sorted(rows: Tensor, k: int, shapes: Sequence[torch.Size]) -> list[Split]:
    """Each row of `rows` (B, n) split at its k-th smallest value; one host sync in all."""
    t = torch.sort(rows, dim=1).values[:, k - 1 : k]  # (B, 1): the k-th smallest
    below = (rows < t).sum(1, keepdim=True)
    at = rows == t
    straddles = below + at.sum(1, keepdim=True) != k
    flags = straddles.squeeze(1).tolist()  # the one synchronisation
    out: list[Split] = []
    for i, shape in enumerate(shapes):
        tie_keep = None
        if flags[i]:  # tied entries past the first k - below of the row stay (lowest cut)
            tie_keep = (at[i] & (at[i].cumsum(0) > k - below[i])).view(shape)
        out.append((t[i, 0], tie_keep))
    return out


def _split_cpu(flat: Tensor, k: int, shape: torch.Size) -> Split:
    # numpy's introselect and counting are 10-100x faster than torch.kthvalue and bool sums
    # on a (shared) CPU: a reset of all MiniLM matrices drops from about 1.5 s to 0.1 s.
    values = flat if flat.dtype in (torch.float32, torch.float64) else flat.float()
    arr = values.numpy()
    part = np.partition(arr, k - 1)
    kth = part[k - 1]
    t = torch.tensor(kth.item(), dtype=flat.dtype)
    # Counted on the partitioned copy: entries before k - 1 are <= kth, entries after it >= kth.
    below = int(np.count_nonzero(part[: k - 1] < kth))
    ties_after = int(np.count_nonzero(part[k:] == kth))
    if ties_after == 0:  # every entry equal to kth lies in the lowest k: no straddle
        return t, None
    at = arr == kth
    tie_keep = at & (np.cumsum(at) > k - below)
    return t, torch.from_numpy(tie_keep).view(shape)


def keep_from_split(values: Tensor, t: Tensor, tie_keep: Tensor | None) -> Tensor:
    keep = values > t
    if tie_keep is not None:
        keep |= tie_keep & (values == t)
    return keep


def keep_all_but_lowest(values: Tensor, k: int) -> Tensor:
    """Bool mask (True = kept) with exactly the k lowest values dropped; ties by flat index."""
    t, tie_keep = lowest_k_split(values, k)
    return keep_from_split(values.detach(), t, tie_keep)
