"""Structured FFN-neuron pruning: units found per layer, unit norms, exact-k selection, the
straight-through gradient of a neuron score, IMP rounds, and the physically smaller model."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize
from transformers import (
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from srcore.export import plain_state_dict
from srcore.pruning import IterativeMagnitudePruner, apply_masks
from srcore.pruning.imp import ImpSchedule
from srcore.pruning.mask_file import load_masks, save_masks
from srcore.pruning.structured import (
    UnitScoreMasker,
    expand_unit_masks,
    ffn_units,
    head_units,
    mask_shapes,
    shrink_ffn,
    structure_units,
    structured_report,
    unit_keeps_from_masks,
    unit_magnitude_masks,
    unit_norms,
    unit_weight_names,
)
from tests.helpers.tiny_bert import eval_tiny_bert, torch_threads


def tiny_roberta() -> RobertaForSequenceClassification:
    config = RobertaConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=48, num_labels=3, pad_token_id=1, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return RobertaForSequenceClassification(config).eval()


def test_ffn_units_of_bert_and_roberta() -> None:
    bert = ffn_units(eval_tiny_bert())
    assert [u.up_weight for u in bert] == [
        f"bert.encoder.layer.{i}.intermediate.dense.weight" for i in range(2)
    ]
    assert [u.down_weight for u in bert] == [
        f"bert.encoder.layer.{i}.output.dense.weight" for i in range(2)
    ]
    assert all(u.n_units == 64 and u.up_bias.endswith("intermediate.dense.bias") for u in bert)
    roberta = ffn_units(tiny_roberta())
    assert roberta[1].down_weight == "roberta.encoder.layer.1.output.dense.weight"
    assert roberta[0].n_units == 48


def test_unit_norm_is_the_norm_of_row_bias_and_column() -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    params = dict(model.named_parameters())
    u, j = units[1], 7
    expected = torch.cat(
        [params[u.up_weight][j], params[u.up_bias][j : j + 1], params[u.down_weight][:, j]]
    ).norm()
    assert torch.isclose(unit_norms(model, units)[1][j], expected)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.8])
def test_magnitude_prunes_exact_k_lowest_norm_neurons_per_layer(sparsity: float) -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    masks = unit_magnitude_masks(model, units, sparsity)
    assert set(masks) == set(unit_weight_names(units))
    keeps = unit_keeps_from_masks(units, masks)
    for keep, norm in zip(keeps, unit_norms(model, units), strict=True):
        k = round(sparsity * 64)
        assert int((~keep).sum()) == k
        assert norm[~keep].max() <= norm[keep].min()  # the pruned are the smallest
    # per-weight masks: whole rows of up, whole columns of down
    up, down = masks[units[0].up_weight], masks[units[0].down_weight]
    assert torch.equal(up.all(1), keeps[0]) and torch.equal(up.any(1), keeps[0])
    assert torch.equal(down.all(0), keeps[0]) and torch.equal(down.any(0), keeps[0])


def test_unstructured_masks_are_refused_as_units() -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    masks = unit_magnitude_masks(model, units, 0.5)
    masks[units[0].down_weight][3, 0] = not bool(masks[units[0].down_weight][3, 0])
    with pytest.raises(ValueError, match="not whole columns"):
        unit_keeps_from_masks(units, masks)


def test_unit_score_gradient_is_the_straight_through_sum_over_its_column() -> None:
    """∂L/∂s_j = Σ_i ∂L/∂W_eff[i, j] · W[i, j], for kept and pruned neurons alike."""
    model = eval_tiny_bert()
    ids = torch.randint(5, 100, (4, 9), generator=torch.Generator().manual_seed(1))
    masker = UnitScoreMasker(model, 0.5, init="soft")
    down = masker.units[0].down_weight
    module = model.get_submodule(down.rsplit(".", 1)[0])
    with torch_threads(1), parametrize.cached():
        w_eff = module.weight  # the cached effective weight the forward uses
        w_eff.retain_grad()
        model(input_ids=ids).logits.sum().backward()
    weight = module.parametrizations.weight.original.detach()
    expected = (w_eff.grad * weight).sum(0)
    scores = masker.scores()[down]
    assert scores.shape == (64,)
    torch.testing.assert_close(scores.grad, expected)
    pruned = ~masker.unit_masks()[0]
    assert int(pruned.sum()) == 32 and scores.grad[pruned].abs().sum() > 0
    assert torch.all(w_eff[:, pruned] == 0)
    # only the scores learn: every model weight is frozen
    assert all(not p.requires_grad for n, p in model.named_parameters() if "original" in n)


@pytest.mark.parametrize("init", ["hard", "soft"])
def test_masker_keeps_exact_counts_and_resets_thresholds(init: str) -> None:
    model = eval_tiny_bert()
    masker = UnitScoreMasker(model, 0.5, init=init)
    assert [int(k.sum()) for k in masker.unit_masks()] == [32, 32]
    reference = unit_magnitude_masks(eval_tiny_bert(), masker.units, 0.5)
    assert all(torch.equal(masker.current_masks()[n], reference[n]) for n in reference)
    masker.reset_thresholds(0.75)  # the exact-k rule on neuron scores, per layer
    assert [int(k.sum()) for k in masker.unit_masks()] == [16, 16]
    state = masker.state_dict()
    assert state["sparsity"] == 0.75 and set(state["scores"]) == {
        u.down_weight for u in masker.units
    }
    masks = masker.remove(leave_pruned=True)
    assert set(masks) == set(unit_weight_names(masker.units))
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        assert torch.all(params[name][~keep] == 0)
        assert params[name].requires_grad  # restored


def test_imp_prunes_more_neurons_each_round_and_keeps_the_pruned() -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    pruner = IterativeMagnitudePruner(
        model,
        unit_weight_names(units),
        ImpSchedule([0.2, 0.4], 0.2),
        select=lambda m, _n, s, previous=None: unit_magnitude_masks(m, units, s, previous),
    )
    first = unit_keeps_from_masks(units, pruner.prune(pruner.schedule.rounds[0]))
    with torch.no_grad():  # survivors change: the next round picks by the current norms
        for u in units:
            dict(model.named_parameters())[u.down_weight].mul_(torch.rand(64)[None, :])
    second = unit_keeps_from_masks(units, pruner.prune(pruner.schedule.rounds[1]))
    for a, b in zip(first, second, strict=True):
        assert int((~a).sum()) == round(0.2 * 64) and int((~b).sum()) == round(0.4 * 64)
        assert not torch.any(b & ~a)  # once pruned, pruned


def test_shrunk_model_has_the_masked_logits_and_fewer_parameters() -> None:
    for model in (eval_tiny_bert(), tiny_roberta()):
        units = ffn_units(model)
        masks = unit_magnitude_masks(model, units, 0.5)
        apply_masks(model, masks)
        ids = torch.randint(5, 100, (3, 11), generator=torch.Generator().manual_seed(2))
        small = shrink_ffn(model, plain_state_dict(model), masks)
        assert type(small) is type(model)
        assert small.config.intermediate_size == units[0].n_units // 2
        with torch.no_grad(), torch_threads(1):
            torch.testing.assert_close(
                small(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-5, atol=1e-6
            )
        report = structured_report(units, masks, model)
        n_small = sum(p.numel() for p in small.parameters())
        assert n_small == report["model_parameters_after_export"]
        assert n_small < sum(p.numel() for p in model.parameters())
        assert report["ffn_neurons_kept_per_layer"] == [units[0].n_units // 2] * 2
        assert report["unit_sparsity"] == 0.5
        assert 0 < report["sparsity_over_encoder_parameters"] < 0.5


def test_unequal_counts_per_layer_cannot_shrink() -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    keeps = [torch.arange(64) < 32, torch.arange(64) < 40]
    masks = expand_unit_masks(units, keeps, mask_shapes(model, units))
    with pytest.raises(ValueError, match="different numbers of FFN neurons"):
        shrink_ffn(model, plain_state_dict(model), masks)


def test_structured_masks_round_trip_through_the_mask_file(tmp_path) -> None:
    model = eval_tiny_bert()
    units = ffn_units(model)
    masks = unit_magnitude_masks(model, units, 0.5)
    path = save_masks(tmp_path / "mask.safetensors", masks, {"structure": "ffn_neurons"})
    loaded, meta = load_masks(path)
    assert meta["structure"] == "ffn_neurons"
    pairs = zip(
        unit_keeps_from_masks(units, loaded), unit_keeps_from_masks(units, masks), strict=True
    )
    assert all(torch.equal(a, b) for a, b in pairs)


def test_head_units_of_bert_and_roberta() -> None:
    [first, _] = head_units(eval_tiny_bert())
    prefix = "bert.encoder.layer.0.attention"
    assert first.rows == tuple(f"{prefix}.self.{m}.weight" for m in ("query", "key", "value"))
    assert first.column == f"{prefix}.output.dense.weight"
    assert (first.n_units, first.width, first.kind) == (2, 16, "heads")
    assert head_units(tiny_roberta())[1].column.startswith("roberta.encoder.layer.1.attention")


def test_head_norm_covers_its_qkv_rows_biases_and_output_columns() -> None:
    model = eval_tiny_bert()
    [u, _] = head_units(model)
    params = dict(model.named_parameters())
    rows = slice(16, 32)  # head 1
    parts = [params[n][rows].reshape(-1) for n in (*u.rows, *u.row_biases)]
    parts.append(params[u.column][:, rows].reshape(-1))
    assert torch.isclose(unit_norms(model, [u])[0][1], torch.cat(parts).norm())


def test_head_score_gradient_sums_the_straight_through_gradient_of_its_columns() -> None:
    model = eval_tiny_bert()
    ids = torch.randint(5, 100, (4, 9), generator=torch.Generator().manual_seed(3))
    masker = UnitScoreMasker(model, 0.5, structure="ffn_neurons+heads", init="soft")
    heads = next(u for u in masker.units if u.kind == "heads")
    module = model.get_submodule(heads.column.rsplit(".", 1)[0])
    with torch_threads(1), parametrize.cached():
        w_eff = module.weight
        w_eff.retain_grad()
        model(input_ids=ids).logits.sum().backward()
    weight = module.parametrizations.weight.original.detach()
    expected = (w_eff.grad * weight).sum(0).view(2, 16).sum(1)
    torch.testing.assert_close(masker.scores()[heads.column].grad, expected)
    # exact counts: half the neurons and one of the two heads of every layer
    assert [int(k.sum()) for k in masker.unit_masks()] == [32, 32, 1, 1]


def tiny_distilbert() -> DistilBertForSequenceClassification:
    config = DistilBertConfig(
        vocab_size=120, dim=32, n_layers=2, n_heads=2, hidden_dim=48, num_labels=3,
        max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    return DistilBertForSequenceClassification(config).eval()


def test_zeroed_heads_and_sliced_neurons_give_the_masked_logits() -> None:
    for model in (eval_tiny_bert(), tiny_roberta(), tiny_distilbert()):
        units = structure_units(model, "ffn_neurons+heads")
        masks = unit_magnitude_masks(model, units, 0.5)
        ids = torch.randint(5, 100, (2, 8), generator=torch.Generator().manual_seed(4))
        with torch.no_grad(), torch_threads(1):
            before = model(input_ids=ids).logits
            apply_masks(model, masks)
            masked = model(input_ids=ids).logits
            small = shrink_ffn(model, plain_state_dict(model), masks)
            torch.testing.assert_close(small(input_ids=ids).logits, masked, rtol=1e-5, atol=1e-6)
        width = getattr(small.config, "intermediate_size", None) or small.config.hidden_dim
        assert width == units[0].n_units // 2  # DistilBERT's FFN width is `hidden_dim`
        assert not torch.allclose(before, masked)  # the heads' removal changed the output
        report = structured_report(units, masks, model)
        assert report["structure"] == "ffn_neurons+heads"
        assert report["heads_kept_per_layer"] == [1, 1] and report["heads_sparsity"] == 0.5
        ffn_only = structured_report(ffn_units(model), masks, model)
        assert report["encoder_parameters_removed"] > ffn_only["encoder_parameters_removed"]
        # heads are zeroed, not removed: the export's count is the FFN slicing's
        assert report["model_parameters_after_export"] == sum(p.numel() for p in small.parameters())
