"""The batched τ reset (sort-based on accelerators, numpy on the CPU) gives exactly what the
earlier per-matrix `torch.kthvalue` selection gave: the same threshold, the same tie mask, and
so the same kept entries, on random and on heavily tied scores."""

from __future__ import annotations

import math

import pytest
import torch

from srcore.pruning import selection
from srcore.pruning.mask_training import ScoreMasker
from srcore.pruning.selection import keep_from_split, lowest_k_splits, pruned_count
from tests.helpers.tiny_bert import eval_tiny_bert


def kthvalue_split(values: torch.Tensor, k: int):
    """The selection as it was before the batched one (the reference)."""
    flat = values.detach().reshape(-1)
    n = flat.numel()
    if k <= 0:
        return torch.tensor(-math.inf, dtype=flat.dtype), None
    if k >= n:
        return flat.max(), None
    t = torch.kthvalue(flat, k).values
    below = int((flat < t).sum())
    at = flat == t
    if below + int(at.sum()) == k:
        return t, None
    tie_keep = at & (at.cumsum(0) > k - below)
    return t, tie_keep.view(values.shape)


def score_set(tied: bool, seed: int = 0) -> list[torch.Tensor]:
    """Matrices of several shapes, some sharing a size (they are stacked together)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(48, 32), (32, 48), (48, 32), (64, 32), (32, 32), (3, 32), (1, 7), (32, 32)]
    out = []
    for shape in shapes:
        values = torch.randn(*shape, generator=gen)
        if tied:
            values = (values * 2).round() / 2  # a handful of distinct values
        out.append(values)
    if tied:
        out.append(torch.zeros(40, 40))  # everything tied
        out.append(torch.full((20, 80), 0.02).index_fill_(1, torch.arange(0, 80, 3), 0.0))
    return out


def assert_same(values, ks, splits):
    for v, k, (t, tie) in zip(values, ks, splits, strict=True):
        ref_t, ref_tie = kthvalue_split(v, k)
        assert torch.equal(t, ref_t)
        assert (tie is None) == (ref_tie is None)
        if tie is not None:
            assert tie.shape == v.shape and torch.equal(tie, ref_tie)
        keep = keep_from_split(v, t, tie)
        assert torch.equal(keep, keep_from_split(v, ref_t, ref_tie))
        assert int((~keep).sum()) == min(max(k, 0), v.numel())


@pytest.mark.parametrize("tied", [False, True], ids=["random", "tied"])
@pytest.mark.parametrize("sort", [True, False], ids=["sort", "numpy"])
@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.7, 0.9, 1.0])
def test_batched_selection_matches_kthvalue(tied, sort, sparsity):
    values = score_set(tied)
    ks = [pruned_count(v.numel(), sparsity) for v in values]
    assert_same(values, ks, lowest_k_splits(values, ks, sort=sort))


def test_per_matrix_ks_and_every_k_of_a_tied_matrix():
    values = (torch.rand(12, 10, generator=torch.Generator().manual_seed(3)) * 3).floor()
    ks = list(range(-1, values.numel() + 2))
    for sort in (True, False):
        splits = lowest_k_splits([values] * len(ks), ks, sort=sort)
        assert_same([values] * len(ks), ks, splits)
        assert sum(tie is not None for _, tie in splits) > len(ks) // 2  # ties straddle often


def test_stacks_are_chunked_without_changing_results(monkeypatch):
    monkeypatch.setattr(selection, "SORT_CHUNK_ELEMENTS", 2000)  # 1 row of 48x32 per sort
    values = score_set(tied=True, seed=4) + score_set(tied=False, seed=5)
    ks = [pruned_count(v.numel(), 0.6) for v in values]
    assert_same(values, ks, lowest_k_splits(values, ks, sort=True))


def test_tie_mask_does_not_hold_the_stacked_batch():
    values = [torch.zeros(16, 16) for _ in range(4)]
    (_, tie), *_ = lowest_k_splits(values, [100] * 4, sort=True)
    assert tie is not None and tie.untyped_storage().nbytes() == 16 * 16


def test_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="2 tensors but 1 counts"):
        lowest_k_splits([torch.zeros(2), torch.zeros(3)], [1])


def test_masker_reset_matches_per_matrix_reset():
    """ScoreMasker.reset_thresholds (batched) against ScoreMask.reset, matrix by matrix."""
    model = eval_tiny_bert()
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and p.ndim == 2]
    names = [n for n in names if "embeddings" not in n]
    masker = ScoreMasker(model, names, 0.5, init="soft")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for i, score in enumerate(masker.parameters()):
            score.copy_((torch.rand(score.shape, generator=gen) * (2 + i % 3)).floor())
    masker.reset_thresholds(0.7)
    batched = {n: (m.threshold.clone(), m.tie_keep) for n, m in masker._masks.items()}
    for name, mask in masker._masks.items():
        mask.reset(0.7)
        t, tie = batched[name]
        assert torch.equal(mask.threshold, t)
        assert (tie is None) == (mask.tie_keep is None)
        if tie is not None:
            assert torch.equal(tie, mask.tie_keep)
        kept = mask.keep_mask()
        assert int((~kept).sum()) == pruned_count(kept.numel(), 0.7)
