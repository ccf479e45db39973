"""Bit-packed mask files: round trip, size, metadata, stored classifier weights."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from srcore.pruning import (
    apply_masks,
    head_state_dict,
    load_mask_weights,
    load_masks,
    magnitude_masks,
    prunable_weights,
    restore_subnetwork,
    save_masks,
    sparsity_report,
)
from tests.helpers.tiny_bert import eval_tiny_bert as tiny_bert


def test_round_trip_bits_and_metadata(tmp_path: Path) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masks = magnitude_masks(model, names, 0.7)
    report = sparsity_report(masks, model)
    meta = {"sparsity_report": report, "threshold": 0.01, "spec_hash": "ab12", "sparsity": 0.7}
    path = save_masks(tmp_path / "m" / "mask-0.7.safetensors", masks, meta)
    loaded, metadata = load_masks(path)
    assert list(loaded) == names
    for name in names:
        assert loaded[name].dtype == torch.bool
        assert torch.equal(loaded[name], masks[name])
    assert metadata["sparsity_report"] == json.loads(json.dumps(report))
    assert metadata["threshold"] == 0.01 and metadata["spec_hash"] == "ab12"
    assert metadata["bit_order"] == "little"
    assert metadata["shapes"]["classifier.weight"] == [3, 32]
    assert metadata["weights"] == []
    assert [p.name for p in path.parent.iterdir()] == ["mask-0.7.safetensors"]  # no temp left


def test_packed_layout_is_little_endian_uint8(tmp_path: Path) -> None:
    keep = torch.tensor([[True, False, False, False, False, False, False, False, True, True]])
    path = save_masks(tmp_path / "x.safetensors", {"w": keep}, {})
    with safe_open(str(path), framework="pt") as f:
        packed = f.get_tensor("w")
        raw_meta = f.metadata()
    assert packed.dtype == torch.uint8
    assert packed.tolist() == [0b00000001, 0b00000011]  # element i → bit i % 8
    assert all(isinstance(v, str) for v in raw_meta.values())


def test_file_size_is_about_one_bit_per_weight(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    masks = {f"layer.{i}.weight": torch.rand(256, 512, generator=gen) > 0.5 for i in range(8)}
    n = sum(m.numel() for m in masks.values())
    path = save_masks(tmp_path / "big.safetensors", masks, {"threshold": 0.01})
    size = os.path.getsize(path)
    assert n // 8 <= size <= n // 8 + 4096
    loaded, _ = load_masks(path)
    assert all(torch.equal(loaded[k], v) for k, v in masks.items())
    assert size < 0.04 * n * 4  # < 4% of a float32 mask


def test_odd_sizes_and_reserved_keys(tmp_path: Path) -> None:
    masks = {"a": torch.tensor([True, False, True]), "b": torch.zeros(3, 5, 7, dtype=torch.bool)}
    masks["b"][1, 2, 3] = True
    loaded, _ = load_masks(save_masks(tmp_path / "odd.safetensors", masks, {}))
    assert torch.equal(loaded["a"], masks["a"]) and torch.equal(loaded["b"], masks["b"])
    with pytest.raises(ValueError, match="reserved"):
        save_masks(tmp_path / "bad.safetensors", masks, {"shapes": {}})


def test_not_a_mask_file_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an srnet mask"):
        load_masks(tmp_path / "other.safetensors")


def test_scenario3_classifier_stored_with_mask_reproduces_logits(tmp_path: Path) -> None:
    # A pre-trained model with a random frozen classifier; only the mask is "found".
    model = tiny_bert(seed=0)
    torch.manual_seed(123)
    torch.nn.init.normal_(model.classifier.weight, std=0.5)
    torch.nn.init.normal_(model.classifier.bias, std=0.5)
    names = prunable_weights(model, include_classifier=True)
    masks = magnitude_masks(model, names, 0.5)
    ids = torch.randint(1, 100, (3, 7), generator=torch.Generator().manual_seed(1))
    apply_masks(model, masks)
    expected = model(input_ids=ids).logits
    classifier = head_state_dict(model)
    assert sorted(classifier) == ["classifier.bias", "classifier.weight"]
    path = save_masks(
        tmp_path / "s3.safetensors",
        masks,
        {"scenario": "pretrained_frozen"},
        weights=classifier,
    )

    # Reload: the same pre-trained body, a classifier re-initialised with another seed.
    fresh = tiny_bert(seed=0)
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    loaded, metadata = load_masks(path)
    assert metadata["weights"] == ["classifier.bias", "classifier.weight"]
    assert set(loaded) == set(names)  # the classifier mask and weights do not collide
    assert torch.equal(load_mask_weights(path)["classifier.weight"], model.classifier.weight)
    assert restore_subnetwork(fresh, path)["scenario"] == "pretrained_frozen"
    assert torch.equal(fresh(input_ids=ids).logits, expected)
    # Without the stored classifier the logits differ: saving it is what makes it reproducible.
    other = tiny_bert(seed=0)
    apply_masks(other, loaded)
    assert not torch.allclose(other(input_ids=ids).logits, expected)


def test_restore_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    masks = magnitude_masks(model, names, 0.5)
    path = save_masks(
        tmp_path / "x.safetensors", masks, {}, weights={"classifier.weight": torch.zeros(2, 32)}
    )
    with pytest.raises(ValueError, match="does not fit"):
        restore_subnetwork(tiny_bert(), path)


def test_identical_masks_give_identical_bytes_in_every_process(tmp_path):
    """safetensors writes its metadata from a per-process hash map: the header is rewritten
    with sorted keys, so the sha256 of a mask depends on its content only (the top-level
    metadata's order included; the masks keep their model order in `shapes`)."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from srcore.pruning.mask_file import save_masks\n"
        "g = torch.Generator().manual_seed(0)\n"
        "masks = {f'layer.{i}.weight': torch.rand(8, 16, generator=g) > 0.5 for i in range(6)}\n"
        "meta = {'sparsity': 0.5, 'spec_hash': 'ab' * 32, 'seed': 1, 'task': 'mnli', "
        "'extra': {'z': 1, 'a': 2}}\n"
        "if sys.argv[2] == 'reversed': meta = dict(reversed(list(meta.items())))\n"
        "save_masks(sys.argv[1], masks, metadata=meta)\n"
    )
    digests = set()
    for i, order in enumerate(["forward", "reversed", "forward", "reversed"]):
        path = tmp_path / f"mask-{i}.safetensors"
        env_seed = {"PYTHONHASHSEED": str(i)}
        import os

        subprocess.run([sys.executable, "-c", code, str(path), order], check=True,
                       env={**os.environ, **env_seed}, timeout=120)  # fmt: skip
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
    from srcore.pruning.mask_file import load_masks

    masks, metadata = load_masks(tmp_path / "mask-0.safetensors")
    assert len(masks) == 6 and metadata["extra"] == {"a": 2, "z": 1}
