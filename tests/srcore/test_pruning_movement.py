"""How far a mask moved from magnitude pruning."""

import pytest
import torch

from srcore.pruning.movement import count_differences, mask_movement


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

