"""IMP: the sparsity sequence, survivors-only training, rewinding to pre-trained weights."""

from __future__ import annotations

import pytest
import torch
from transformers import BertForSequenceClassification

from srcore.pruning import (
    ImpSchedule,
    IterativeMagnitudePruner,
    base_weights_snapshot,
    prunable_weights,
)
from tests.helpers.tiny_bert import tiny_bert as helper_bert
from tests.helpers.tiny_bert import word_tokenizer


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    """A tiny random BERT in training mode (IMP trains it)."""
    return helper_bert(word_tokenizer(), num_labels=3, seed=seed)


def train_round(model: torch.nn.Module, hooks: object, steps: int = 3) -> None:
    """A stand-in for the Trainer: fresh optimizer, weight decay, clipping, the hook per step."""
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1
    )
    gen = torch.Generator().manual_seed(0)
    for step in range(1, steps + 1):
        ids = torch.randint(1, 100, (4, 8), generator=gen)
        labels = torch.randint(0, 3, (4,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        hooks.after_optimizer_step(step)  # type: ignore[attr-defined]


def test_schedule_rounds() -> None:
    schedule = ImpSchedule([0.5, 0.9, 0.3])
    assert [r.sparsity for r in schedule.rounds] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    )
    assert [r.index for r in schedule.rounds if r.is_target] == [3, 5, 9]
    assert [r.sparsity for r in ImpSchedule([0.6], rate=0.2).rounds] == pytest.approx(
        [0.2, 0.4, 0.6]
    )
    with pytest.raises(ValueError, match="multiples"):
        ImpSchedule([0.55])


def test_imp_sparsity_sequence_survivors_train_pruned_stay_zero() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    pruner = IterativeMagnitudePruner(model, names, ImpSchedule([0.9]))
    previous: dict[str, torch.Tensor] | None = None
    seen = []
    for rnd in pruner.schedule.rounds:
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        masks = pruner.prune(rnd)
        params = dict(model.named_parameters())
        for name in names:
            keep = masks[name]
            assert int((~keep).sum()) == round(rnd.sparsity * keep.numel()), (rnd, name)
            if previous is not None:
                assert not bool((keep & ~previous[name]).any())  # pruned stays pruned
            # The newly pruned are the smallest surviving magnitudes of the trained weights.
            survivors = before[name].abs()[keep]
            newly = before[name].abs()[~keep & (previous[name] if previous else True)]
            assert newly.max() <= survivors.min()
        hooks = pruner.training_hooks()
        train_round(model, hooks)
        hooks.close()
        params = dict(model.named_parameters())
        for name in names:
            assert torch.all(params[name][~masks[name]] == 0)
            moved = params[name][masks[name]] != before[name][masks[name]]
            assert bool(moved.any())  # survivors trained
        previous = {n: m.clone() for n, m in masks.items()}
        seen.append(rnd.sparsity)
    assert seen == pytest.approx([0.1 * i for i in range(1, 10)])


def test_gradient_masking_hides_pruned_gradients_from_clipping() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    pruner = IterativeMagnitudePruner(model, names, ImpSchedule([0.5]))
    masks = pruner.prune(pruner.schedule.rounds[0])
    hooks = pruner.training_hooks()
    model(input_ids=torch.randint(1, 100, (2, 6))).logits.sum().backward()
    params = dict(model.named_parameters())
    for name in names:
        assert params[name].grad is not None
        assert torch.all(params[name].grad[~masks[name]] == 0)
    hooks.close()
    model.zero_grad()
    model(input_ids=torch.randint(1, 100, (2, 6))).logits.sum().backward()
    assert any(bool((params[n].grad[~masks[n]] != 0).any()) for n in names)


def test_rewinding_restores_pretrained_bert_but_keeps_classifier() -> None:
    model = tiny_bert()
    pretrained = base_weights_snapshot(model)
    assert not any(name.startswith("classifier") for name in pretrained)
    names = prunable_weights(model, include_classifier=False)
    pruner = IterativeMagnitudePruner(model, names, ImpSchedule([0.3]), rewind_to=pretrained)
    masks = pruner.prune(pruner.schedule.rounds[0])
    for rnd in pruner.schedule.rounds[1:]:
        hooks = pruner.training_hooks()
        train_round(model, hooks)
        hooks.close()
        trained_classifier = model.classifier.weight.detach().clone()
        trained = {n: p.detach().clone() for n, p in model.named_parameters()}
        masks = pruner.prune(rnd)
        params = dict(model.named_parameters())
        for name, value in pretrained.items():
            if name in masks:
                assert torch.equal(params[name][masks[name]], value[masks[name]])
                assert torch.all(params[name][~masks[name]] == 0)
            else:
                assert torch.equal(params[name], value), name
        assert torch.equal(model.classifier.weight, trained_classifier)
        # The mask came from the trained weights, not the pre-trained ones.
        for name in names:
            newly = ~masks[name] & (trained[name] != 0)
            assert trained[name].abs()[newly].max() <= trained[name].abs()[masks[name]].min()


def test_pruner_and_hooks_state_round_trip() -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    pruner = IterativeMagnitudePruner(model, names, ImpSchedule([0.3]))
    for rnd in pruner.schedule.rounds[:2]:
        pruner.prune(rnd)
    state = pruner.state_dict()
    first_hooks = pruner.training_hooks()
    hook_state = first_hooks.state_dict()
    first_hooks.close()
    assert first_hooks.snapshot() is None  # the Trainer keeps the trained weights instead
    assert state["sparsity"] == hook_state["sparsity"] == pytest.approx(0.2)

    other = tiny_bert(seed=5)
    resumed = IterativeMagnitudePruner(other, names, ImpSchedule([0.3]))
    resumed.load_state_dict(state)
    hooks = resumed.training_hooks()
    params = dict(other.named_parameters())
    for name in names:
        assert torch.equal(resumed.masks[name], state["masks"][name])
        assert torch.equal(params[name] == 0, ~state["masks"][name])
    hooks.close()
    masks = resumed.prune(resumed.schedule.rounds[2])
    for name in names:
        assert int((~masks[name]).sum()) == round(0.3 * masks[name].numel())
        assert not bool((masks[name] & ~state["masks"][name]).any())
