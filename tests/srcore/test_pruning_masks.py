"""Which matrices are pruned, exact magnitude masks, IMP quotas and the sparsity report."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    RobertaConfig,
    RobertaForSequenceClassification,
)

from srcore.pruning import (
    apply_masks,
    magnitude_masks,
    model_parameter_count,
    prunable_weights,
    pruned_count,
    sparsity_report,
)
from tests.helpers.tiny_bert import eval_tiny_bert as tiny_bert

LAYER_MATRICES = [
    "attention.self.query.weight",
    "attention.self.key.weight",
    "attention.self.value.weight",
    "attention.output.dense.weight",
    "intermediate.dense.weight",
    "output.dense.weight",
]


def test_prunable_weights_bert() -> None:
    model = tiny_bert()
    expected = [f"bert.encoder.layer.{i}.{m}" for i in range(2) for m in LAYER_MATRICES]
    expected.append("bert.pooler.dense.weight")
    assert prunable_weights(model, include_classifier=False) == expected
    assert prunable_weights(model, include_classifier=True) == [*expected, "classifier.weight"]


def test_prunable_weights_roberta_head_and_no_embeddings() -> None:
    config = RobertaConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
    )
    model = RobertaForSequenceClassification(config)
    names = prunable_weights(model, include_classifier=True)
    assert names == [f"roberta.encoder.layer.0.{m}" for m in LAYER_MATRICES] + [
        "classifier.dense.weight",
        "classifier.out_proj.weight",
    ]
    params = dict(model.named_parameters())
    assert all(name in params for name in names)
    assert not any("embeddings" in n or "LayerNorm" in n or n.endswith("bias") for n in names)


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.7, 0.9, 0.95])
def test_magnitude_masks_exact_per_matrix(sparsity: float) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masks = magnitude_masks(model, names, sparsity)
    params = dict(model.named_parameters())
    for name in names:
        keep = masks[name]
        weight = params[name].detach().abs()
        assert keep.dtype == torch.bool and keep.shape == weight.shape
        k = round(sparsity * weight.numel())
        assert int((~keep).sum()) == k
        # Every pruned magnitude is <= every kept magnitude.
        assert weight[~keep].max() <= weight[keep].min()


def test_pruned_count_rounds_half_up_and_absorbs_float_noise() -> None:
    assert pruned_count(10, 0.3) == 3  # 0.3 * 10 = 3.0000000000000004
    assert pruned_count(10, 0.7) == 7
    assert pruned_count(3, 0.5) == 2
    assert pruned_count(96, 0.9) == 86  # 86.4
    with pytest.raises(ValueError):
        pruned_count(10, 1.5)


def test_ties_broken_by_index_deterministically() -> None:
    weights = {"w": torch.tensor([[0.5, -0.1, 0.1, 0.3], [0.1, -0.1, 2.0, 0.1]])}
    # |W| = 0.1 six times; 3 of them must go, the lowest flat indices first (1, 2, 4).
    keep = magnitude_masks(weights, ["w"], 3 / 8)["w"]
    expected = torch.tensor([[True, False, False, True], [False, True, True, True]])
    assert torch.equal(keep, expected)
    assert torch.equal(keep, magnitude_masks(weights, ["w"], 3 / 8)["w"])


def test_imp_quota_counts_original_weights_among_survivors() -> None:
    torch.manual_seed(1)
    weights = {"w": torch.randn(20, 10)}
    first = magnitude_masks(weights, ["w"], 0.1)
    # Training moves weights: make some pruned ones large, so plain magnitude would revive them.
    moved = {"w": weights["w"].clone()}
    moved["w"][~first["w"]] = 100.0
    second = magnitude_masks(moved, ["w"], 0.2, previous=first)["w"]
    assert int((~second).sum()) == 40  # 20% of the 200 original weights
    assert not bool((second & ~first["w"]).any())  # nothing pruned comes back
    plain = magnitude_masks(moved, ["w"], 0.2)["w"]
    assert not torch.equal(plain, second)
    with pytest.raises(ValueError, match="already pruned"):
        magnitude_masks(moved, ["w"], 0.05, previous=first)


def test_apply_masks_zeros_exactly_the_pruned_weights() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    masks = magnitude_masks(model, names, 0.6)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_masks(model, masks)
    for name, param in model.named_parameters():
        if name in masks:
            assert torch.equal(param == 0, ~masks[name])
            assert torch.equal(param[masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(param, before[name])


def test_sparsity_report_denominators() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masks = magnitude_masks(model, names, 0.5)
    report = sparsity_report(masks, model)
    total = sum(p.numel() for p in model.parameters())
    masked = sum(masks[n].numel() for n in names)
    pruned = sum(round(0.5 * masks[n].numel()) for n in names)
    assert model_parameter_count(model) == total
    assert report["model_parameters"] == total
    assert report["masked_weights"] == masked
    assert report["pruned_weights"] == pruned
    assert report["sparsity_over_masked_weights"] == pytest.approx(pruned / masked)
    assert report["sparsity_over_all_parameters"] == pytest.approx(pruned / total)
    assert report["sparsity_over_all_parameters"] < report["sparsity_over_masked_weights"]
    assert report["per_matrix"]["classifier.weight"] == {"zeros": 48, "numel": 96, "sparsity": 0.5}


@pytest.mark.parametrize("ties", [False, True])
def test_cpu_and_accelerator_selection_paths_agree(ties: bool) -> None:
    # The CUDA path (torch.kthvalue) is exercised here on CPU against the numpy path.
    from srcore.pruning.selection import _split_cpu, _split_torch, keep_from_split

    gen = torch.Generator().manual_seed(0)
    values = torch.rand(64, 48, generator=gen)
    if ties:
        values = (values * 4).floor()  # four distinct values: large tie groups
    for k in (1, 100, 1536, 3000, 3071):
        flat = values.reshape(-1)
        t_cpu, tie_cpu = _split_cpu(flat, k, values.shape)
        t_acc, tie_acc = _split_torch(flat, k, values.shape)
        assert torch.equal(t_cpu, t_acc)
        keep_cpu = keep_from_split(values, t_cpu, tie_cpu)
        keep_acc = keep_from_split(values, t_acc, tie_acc)
        assert torch.equal(keep_cpu, keep_acc)
        assert int((~keep_cpu).sum()) == k
        assert (tie_cpu is not None) == (tie_acc is not None)
    if ties:
        assert tie_cpu is not None  # the test did reach the tie branch
