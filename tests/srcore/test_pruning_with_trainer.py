"""The pruning hooks inside the real Trainer: gradual selection, exact resume, IMP rounds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srcore.jobspec.callbacks import Cancelled
from srcore.pruning import (
    CubicSparsity,
    ImpSchedule,
    IterativeMagnitudePruner,
    MaskTrainingHooks,
    ScoreMasker,
    prunable_weights,
)
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split
from tests.helpers.callbacks import RecordingCallbacks
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer([])


@pytest.fixture(scope="module")
def train(tokenizer):
    return encode_split(random_pair_split(48, seed=0), tokenizer, max_length=32)


def mask_search(tokenizer, train, schedule, checkpoint_dir=None, callbacks=None, values=None):
    model = tiny_bert(tokenizer, num_labels=3, seed=0)
    masker = ScoreMasker(model, prunable_weights(model, True), schedule.sparsity_at(0), init="soft")
    evaluations = iter(values or [0.5] * 100)
    trainer = Trainer(
        model,
        train,
        TrainerConfig(
            max_steps=12,
            batch_size=8,
            lr=1e-2,
            seed=1,
            eval_every=2,
            select_last_fraction=1.0,
            checkpoint_dir=checkpoint_dir,
            checkpoint_every=4 if checkpoint_dir else None,
        ),
        debias_loss_fn("none"),
        params=masker.parameters(),
        evaluate_fn=lambda m: {"selection": next(evaluations)},
        callbacks=callbacks,
        hooks=MaskTrainingHooks(masker, schedule),
    )
    return trainer, masker


def test_gradual_run_selects_only_final_sparsity(tokenizer, train) -> None:
    schedule = CubicSparsity(initial=0.5, final=0.8, ramp_steps=6)
    # Evaluations at steps 2..12; the earliest one scores best but is below the final sparsity.
    trainer, masker = mask_search(tokenizer, train, schedule, values=[0.9, 0.8, 0.3, 0.6, 0.4, 0.2])
    result = trainer.run()
    recorded = [(h["step"], h["info"]["sparsity"], h["info"]["selectable"]) for h in result.history]
    assert recorded == [
        (step, pytest.approx(schedule.sparsity_at(step)), step >= 6) for step in range(2, 13, 2)
    ]
    assert recorded[0][1] == pytest.approx(0.8 - 0.3 * (2 / 3) ** 3)
    assert result.best_step == 8
    for name, keep in result.best_snapshot.items():
        assert keep.dtype == torch.bool and keep.device.type == "cpu"
        assert int((~keep).sum()) == round(0.8 * keep.numel()), name
    weights = {n: p for n, p in masker.model.named_parameters() if p.requires_grad}
    assert all(n.endswith(".scores") for n in weights)


def test_interrupted_mask_search_resumes_exactly(tokenizer, train, tmp_path: Path) -> None:
    schedule = CubicSparsity(initial=0.5, final=0.8, ramp_steps=6)
    full, full_masker = mask_search(tokenizer, train, schedule)
    full.run()

    stop = RecordingCallbacks(stop_after_checks=6)
    first, _ = mask_search(tokenizer, train, schedule, tmp_path / "ck", stop)
    with pytest.raises(Cancelled):
        first.run()
    second, masker = mask_search(tokenizer, train, schedule, tmp_path / "ck")
    second.run(resume=True)
    for name, scores in full_masker.scores().items():
        assert torch.equal(masker.scores()[name], scores), name
    expected = full_masker.current_masks()
    assert all(torch.equal(k, expected[n]) for n, k in masker.current_masks().items())


def test_imp_rounds_with_trainer_keep_pruned_weights_zero(tokenizer, train) -> None:
    model = tiny_bert(tokenizer, num_labels=3, seed=0)
    names = prunable_weights(model, include_classifier=False)
    pruner = IterativeMagnitudePruner(model, names, ImpSchedule([0.2]))
    for rnd in pruner.schedule.rounds:
        masks = pruner.prune(rnd)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        hooks = pruner.training_hooks()
        result = Trainer(
            model,
            train,
            TrainerConfig(max_steps=4, batch_size=8, lr=1e-2, weight_decay=0.1, eval_every=2),
            debias_loss_fn("none"),
            evaluate_fn=lambda m: {"selection": 0.5},
            hooks=hooks,
        ).run()
        hooks.close()
        assert [h["info"]["sparsity"] for h in result.history] == [rnd.sparsity] * 2
        params = dict(model.named_parameters())
        for name in names:
            assert torch.all(params[name][~masks[name]] == 0)
            assert not torch.equal(params[name], before[name])
            best = result.best_snapshot[name]  # the Trainer kept the weights
            assert torch.all(best[~masks[name].cpu()] == 0)
