"""Mask training: scores, straight-through gradient, initialisation, exact threshold reset."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from srcore.pruning import (
    ConstantSparsity,
    CubicSparsity,
    MaskTrainingHooks,
    ScoreMasker,
    magnitude_masks,
    prunable_weights,
)
from tests.helpers.tiny_bert import eval_tiny_bert as tiny_bert


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 100, (4, 9), generator=gen),
        "attention_mask": torch.ones(4, 9, dtype=torch.long),
    }


def pruned(keep: torch.Tensor) -> int:
    return int((~keep).sum())


def test_weights_frozen_only_scores_train() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.5)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == len(names)
    assert all(n.endswith(".scores") for n in trainable)
    assert {id(p) for p in masker.parameters()} == {
        id(p) for p in model.parameters() if p.requires_grad
    }


def test_straight_through_gradient_equals_weff_gradient_times_w() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    reference = tiny_bert()  # identical weights (same seed), left unparametrized
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    masker = ScoreMasker(model, names, 0.4, init="soft")
    masks = masker.current_masks()
    probe = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))

    loss = (model(**batch()).logits * probe).sum()
    loss.backward()

    w_eff = {n: (weights[n] * masks[n]).requires_grad_(True) for n in names}
    logits = functional_call(reference, w_eff, args=(), kwargs=batch()).logits
    (logits * probe).sum().backward()
    for name in names:
        expected = w_eff[name].grad * weights[name]
        got = masker.scores()[name].grad
        assert got is not None
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), name
        # Pruned weights get a gradient too (what lets them come back).
        assert got[~masks[name]].abs().sum() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if "scores" not in n)


def test_hard_init_zero_and_two_tau() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    expected = magnitude_masks(model, names, 0.7)
    masker = ScoreMasker(model, names, 0.7, init="hard", threshold=0.01)
    for name, scores in masker.scores().items():
        keep = expected[name]
        assert torch.all(scores[~keep] == 0.0)
        assert torch.allclose(scores[keep], torch.full_like(scores[keep], 0.02))
        assert torch.equal(masker.current_masks()[name], keep)
    # Hard init keeps τ at the configured threshold.
    assert all(float(m.threshold) == pytest.approx(0.01) for m in masker._masks.values())


def test_soft_init_magnitudes_and_exact_mask() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    expected = magnitude_masks(model, names, 0.3)
    masker = ScoreMasker(model, names, 0.3, init="soft")
    for name, scores in masker.scores().items():
        assert torch.equal(scores.detach(), weights[name].abs())
        assert torch.equal(masker.current_masks()[name], expected[name])


def test_forward_uses_the_reported_mask() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.5, init="soft")
    masks = masker.current_masks()
    for name in names:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        assert torch.equal(module.weight != 0, masks[name])


def test_reset_thresholds_exact_with_ties() -> None:
    model = tiny_bert()
    name = "bert.pooler.dense.weight"
    masker = ScoreMasker(model, [name], 0.5)
    scores = masker.scores()[name]
    with torch.no_grad():
        scores.zero_()  # 1024 identical scores: only the index can decide
        scores.view(-1)[:10] = -1.0
    for sparsity in (0.25, 0.5, 0.9):
        masker.reset_thresholds(sparsity)
        keep = masker.current_masks()[name].view(-1)
        k = round(sparsity * keep.numel())
        assert pruned(keep) == k
        assert not keep[:k].any() and keep[k:].all()
        weight = model.get_submodule("bert.pooler.dense").weight.view(-1)
        assert torch.equal(weight != 0, keep)
    masker.reset_thresholds(0.0)
    assert pruned(masker.current_masks()[name]) == 0


@pytest.mark.parametrize("init", ["hard", "soft"])
def test_reset_exact_after_training_steps(init: str) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.5, init=init)  # type: ignore[arg-type]
    optimizer = torch.optim.AdamW(masker.parameters(), lr=5e-3)
    labels = torch.tensor([0, 1, 2, 1])
    before = masker.current_masks()
    for step in range(5):
        loss = torch.nn.functional.cross_entropy(model(**batch(step)).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    drifted = masker.current_masks()
    assert any(not torch.equal(before[n], drifted[n]) for n in names)  # the mask moved
    for sparsity in (0.5, 0.63, 0.9):
        masker.reset_thresholds(sparsity)
        for name, keep in masker.current_masks().items():
            assert pruned(keep) == round(sparsity * keep.numel()), name
            scores = masker.scores()[name].detach()
            assert scores[~keep].max() <= scores[keep].min()


def test_state_dict_resume_restores_scores_and_masks() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.5, init="soft")
    with torch.no_grad():
        for scores in masker.parameters():
            scores.add_(torch.randn_like(scores) * 0.01)
    masker.reset_thresholds(0.6)
    state = masker.state_dict()
    logits = model(**batch()).logits

    other = tiny_bert()
    resumed = ScoreMasker(other, prunable_weights(other, True), 0.5, init="hard")
    params_before = [id(p) for p in resumed.parameters()]
    resumed.load_state_dict(state)
    assert [id(p) for p in resumed.parameters()] == params_before  # optimizer stays valid
    assert resumed.sparsity == 0.6
    for name, keep in masker.current_masks().items():
        assert torch.equal(resumed.current_masks()[name], keep)
    assert torch.equal(other(**batch()).logits, logits)


def test_remove_leaves_plain_zeroed_model() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    requires = {n: p.requires_grad for n, p in model.named_parameters()}
    masker = ScoreMasker(model, names, 0.5, init="soft")
    logits = model(**batch()).logits
    masks = masker.remove(leave_pruned=True)
    keys = list(model.state_dict())
    assert not any(
        "parametrizations" in k or "weight_orig" in k or "weight_mask" in k for k in keys
    )
    assert sorted(keys) == sorted(tiny_bert().state_dict())
    params = dict(model.named_parameters())
    for name in names:
        assert torch.equal(params[name] == 0, ~masks[name])
    assert {n: p.requires_grad for n, p in model.named_parameters()} == requires
    assert torch.allclose(model(**batch()).logits, logits, atol=1e-6)


def test_remove_without_pruning_restores_dense_weights() -> None:
    model = tiny_bert()
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    masker = ScoreMasker(model, prunable_weights(model, True), 0.5)
    masker.remove(leave_pruned=False)
    for name, param in model.named_parameters():
        assert torch.equal(param, dense[name])


def test_hooks_gradual_schedule_resets_each_step_and_records_sparsity() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    schedule = CubicSparsity(initial=0.5, final=0.9, ramp_steps=10)
    masker = ScoreMasker(model, names, schedule.sparsity_at(0), init="soft")
    hooks = MaskTrainingHooks(masker, schedule)
    hooks.after_optimizer_step(5)
    s5 = schedule.sparsity_at(5)
    assert s5 == pytest.approx(0.9 + (0.5 - 0.9) * 0.5**3)
    for keep in masker.current_masks().values():
        assert pruned(keep) == round(s5 * keep.numel())
    record = hooks.before_evaluate(5)
    assert record == {"sparsity": pytest.approx(s5), "selectable": False}
    record = hooks.before_evaluate(12)
    assert record == {"sparsity": 0.9, "selectable": True}
    snap = hooks.snapshot()
    for name, keep in snap.items():
        assert keep.device.type == "cpu" and keep.dtype == torch.bool
        assert pruned(keep) == round(0.9 * keep.numel()), name


def test_hooks_constant_schedule_keeps_tau_between_evaluations() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.5, init="hard")
    hooks = MaskTrainingHooks(masker, ConstantSparsity(0.5))
    with torch.no_grad():
        for scores in masker.parameters():
            scores.add_(torch.randn_like(scores) * 0.01)
    drifted = masker.current_masks()
    hooks.after_optimizer_step(1)  # constant: τ untouched
    assert all(torch.equal(drifted[n], k) for n, k in masker.current_masks().items())
    assert hooks.before_evaluate(1) == {"sparsity": 0.5, "selectable": True}
    for keep in masker.current_masks().values():
        assert pruned(keep) == round(0.5 * keep.numel())
    state = hooks.state_dict()
    assert "scores" not in state  # saved with the model's state_dict by the Trainer
    assert set(state["thresholds"]) == set(names)
    model_keys = set(model.state_dict())
    for name in names:
        module = name.rsplit(".", 1)[0]
        assert f"{module}.parametrizations.weight.0.scores" in model_keys
        assert f"{module}.parametrizations.weight.0.threshold" in model_keys
