"""How far a mask moved from magnitude pruning, and the budget rule of the score lr."""

import math

import pytest
import torch

from srcore.pruning.movement import count_differences, mask_movement
from srcore.pruning.score_lr import (
    PAPER_MASK_STEPS,
    PAPER_SCORE_LR,
    WEIGHT_LR,
    budget_score_lr,
    search_learning_rate,
)


def test_movement_counts_entries_that_differ_from_magnitude_and_from_init():
    magnitude = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([[True, False]])}
    found = {"a": torch.tensor([True, False, True, False]), "b": torch.tensor([[True, False]])}
    initial = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([[False, True]])}
    movement = mask_movement(found, magnitude, initial)
    assert movement.entries == 6
    assert movement.differ_from_magnitude == 2
    assert movement.flipped_from_init == 4
    assert movement.differ_fraction == pytest.approx(2 / 6)
    out = movement.as_dict()
    assert out["flipped_fraction"] == pytest.approx(4 / 6)
    assert mask_movement(found, found).as_dict()["flipped_fraction"] is None


def test_movement_refuses_masks_of_other_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        count_differences({"a": torch.ones(2, dtype=torch.bool)}, {"a": torch.ones(3).bool()})


def test_score_lr_is_the_papers_at_its_budget_and_grows_as_the_root_of_the_ratio():
    assert budget_score_lr(PAPER_MASK_STEPS) == pytest.approx(PAPER_SCORE_LR)
    assert budget_score_lr(PAPER_MASK_STEPS // 100) == pytest.approx(
        PAPER_SCORE_LR * math.sqrt(PAPER_MASK_STEPS / (PAPER_MASK_STEPS // 100))
    )
    assert budget_score_lr(564) == pytest.approx(5.2e-4, rel=0.02)
    with pytest.raises(ValueError):
        budget_score_lr(0)


def test_explicit_learning_rate_wins_and_imp_keeps_the_weight_rate():
    assert search_learning_rate(1e-3, "mask_training", 100) == 1e-3
    assert search_learning_rate(None, "mask_training", 100) == budget_score_lr(100)
    assert search_learning_rate(None, "imp", 100) == WEIGHT_LR
