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


def test_matrix_place_names_the_six_matrices_of_a_layer_and_the_rest():
    from srcore.pruning.movement import matrix_place

    base = "bert.encoder.layer.3."
    assert [matrix_place(base + part + ".weight") for part in (
        "attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "intermediate.dense", "output.dense",
    )] == [("Q", 3), ("K", 3), ("V", 3), ("AO", 3), ("I", 3), ("O", 3)]  # fmt: skip
    assert matrix_place("bert.pooler.dense.weight") == ("pooler", None)
    assert matrix_place("classifier.weight") == ("classifier", None)
    assert matrix_place("distilbert.transformer.layer.5.ffn.lin2.weight") == ("O", 5)
    assert matrix_place("roberta.encoder.layer.11.attention.self.key.weight") == ("K", 11)


def test_movement_is_broken_down_per_matrix_type_and_per_layer():
    def masks(flip_layer1_query: int, flip_layer0_output: int) -> dict:
        found = {}
        for layer in (0, 1):
            for part, size in (("attention.self.query", 10), ("output.dense", 20)):
                keep = torch.ones(size, dtype=torch.bool)
                flips = {(1, "attention.self.query"): flip_layer1_query,
                         (0, "output.dense"): flip_layer0_output}.get((layer, part), 0)  # fmt: skip
                keep[:flips] = False
                found[f"bert.encoder.layer.{layer}.{part}.weight"] = keep
        found["bert.pooler.dense.weight"] = torch.ones(5, dtype=torch.bool)
        return found

    magnitude = masks(0, 0)
    movement = mask_movement(masks(4, 2), magnitude, masks(4, 0))
    assert (movement.entries, movement.differ_from_magnitude, movement.flipped_from_init) == (
        65,
        6,
        2,
    )
    out = movement.as_dict()
    assert list(out["by_type"]) == ["Q", "O", "pooler"]
    assert out["by_type"]["Q"]["differ_from_magnitude"] == 4
    assert out["by_type"]["Q"]["differ_fraction"] == pytest.approx(4 / 20)
    assert out["by_type"]["O"]["flipped_fraction"] == pytest.approx(2 / 40)
    assert out["by_type"]["pooler"]["differ_fraction"] == 0.0
    assert list(out["by_layer"]) == ["0", "1"]  # the pooler is in no layer
    assert out["by_layer"]["1"]["differ_from_magnitude"] == 4
    assert out["by_layer"]["0"]["differ_fraction"] == pytest.approx(2 / 30)
    assert out["by_layer"]["0"]["flipped_from_init"] == 2
    assert sum(g["entries"] for g in out["by_layer"].values()) == 60
    assert mask_movement(magnitude, magnitude).as_dict()["by_type"]["Q"]["flipped_fraction"] is None
