"""Exported checkpoints load with plain transformers; reports are written atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from srcore.export import export_checkpoint, library_versions, plot_report, write_report
from srcore.pruning import (
    ScoreMasker,
    magnitude_masks,
    prunable_weights,
    sparsity_report,
)
from tests.helpers.tiny_bert import eval_tiny_bert as tiny_bert
from tests.helpers.tiny_bert import word_tokenizer

LABELS = ["contradiction", "entailment", "neutral"]

TOKENIZER = word_tokenizer()


def inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(1, 100, (5, 11), generator=gen),
        "attention_mask": torch.ones(5, 11, dtype=torch.long),
    }


def test_mask_trained_model_exports_to_plain_checkpoint(tmp_path: Path) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=True)
    masker = ScoreMasker(model, names, 0.6, init="soft")
    with torch.no_grad():
        for scores in masker.parameters():
            scores.add_(torch.randn_like(scores) * 0.05)
    masker.reset_thresholds(0.6)
    masks = masker.current_masks()
    report = sparsity_report(masks, model)
    with torch.no_grad():
        expected = model(**inputs()).logits

    out = export_checkpoint(model, TOKENIZER, LABELS, tmp_path / "ckpt")
    assert masker.current_masks().keys() == masks.keys()  # the live model is left as it was

    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        keys = list(f.keys())
    assert not any(
        "parametrizations" in k or "weight_orig" in k or "weight_mask" in k or "scores" in k
        for k in keys
    )
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        assert torch.equal(loaded(**inputs()).logits, expected)
    params = dict(loaded.named_parameters())
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    assert zeros == report["pruned_weights"]
    for name in names:
        assert torch.equal(params[name] != 0, masks[name])
    assert loaded.config.id2label == dict(enumerate(LABELS))
    assert loaded.config.label2id == {"contradiction": 0, "entailment": 1, "neutral": 2}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"]["1"] == "entailment"
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("the cat", "a dog")["input_ids"][0] == tokenizer.cls_token_id
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]  # no temp dirs left


def test_plain_model_with_masks_is_not_modified(tmp_path: Path) -> None:
    model = tiny_bert()
    names = prunable_weights(model, include_classifier=False)
    masks = magnitude_masks(model, names, 0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    out = export_checkpoint(model, None, LABELS, tmp_path / "ckpt", masks=masks)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    loaded = AutoModelForSequenceClassification.from_pretrained(out)
    params = dict(loaded.named_parameters())
    for name, param in params.items():
        if name in masks:
            assert torch.equal(param == 0, ~masks[name])
            assert torch.equal(param[masks[name]], before[name][masks[name]])
        else:
            assert torch.equal(param, before[name])


def test_existing_directory_needs_overwrite(tmp_path: Path) -> None:
    model = tiny_bert()
    out = export_checkpoint(model, None, LABELS, tmp_path / "ckpt")
    with pytest.raises(FileExistsError):
        export_checkpoint(model, None, LABELS, out)
    (out / "stale.txt").write_text("old")
    export_checkpoint(model, None, LABELS, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(ValueError, match="label names"):
        export_checkpoint(model, None, ["yes", "no"], tmp_path / "other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_write_report(tmp_path: Path) -> None:
    versions = library_versions()
    assert versions["torch"] == torch.__version__ and versions["transformers"]
    metrics = {
        "selected": {"sparsity": 0.5, "mnli_dev": {"accuracy": 0.81}},
        "seeds": [1, 2],
        "versions": versions,
    }
    path = write_report(metrics, tmp_path / "out")
    assert path == tmp_path / "out" / "metrics.json"
    assert json.loads(path.read_text()) == metrics
    with pytest.raises(ValueError):
        write_report({"x": float("nan")}, tmp_path / "out")
    assert json.loads(path.read_text()) == metrics  # a failed write leaves the old file
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["metrics.json"]


def test_plot_report_writes_png(tmp_path: Path) -> None:
    points = [
        {
            "sparsity": s,
            "seed": seed,
            "metrics": {
                "mnli_dev_matched": {"accuracy": 0.8 - s / 10 + seed / 100},
                "hans": {"accuracy": 0.6 + s / 10, "per_heuristic": {}},
                "paws": {"f1": 0.4},
            },
        }
        for s in (0.5, 0.7, 0.9)
        for seed in (1, 2)
    ]
    path = plot_report(points, tmp_path / "report.png", title="mnli, poe")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000
    empty = plot_report([], tmp_path / "empty.png")
    assert empty.read_bytes()[:4] == b"\x89PNG"
