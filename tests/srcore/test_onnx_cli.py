"""`srnet export-onnx` on tiny BERT and RoBERTa checkpoints with pruned neurons and heads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from srcore.export import export_checkpoint
from srcore.export_onnx import export_onnx, max_logit_difference
from srcore.pruning.structured import structure_units, unit_magnitude_masks
from srnet.cli import main

LABELS = ("contradiction", "entailment", "neutral")


def _pruned_checkpoint(model: torch.nn.Module, tokenizer, out: Path) -> Path:
    masks = unit_magnitude_masks(model, structure_units(model, "ffn_neurons+heads"), 0.5)
    return export_checkpoint(model, tokenizer, LABELS, out, masks=masks, shrink_ffn_neurons=True)


def test_cli_writes_fp32_and_int8_with_the_pruned_heads_gone(tiny_model, tmp_path, capsys):
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model).eval()
    ckpt = _pruned_checkpoint(model, AutoTokenizer.from_pretrained(tiny_model), tmp_path / "c")
    out = tmp_path / "onnx"
    assert main(["export-onnx", str(ckpt), str(out), "--int8"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["heads_per_layer"] == [1, 1]  # 2 heads per layer, half pruned
    assert summary["max_logit_difference_fp32"] < 1e-4
    assert set(summary["files"]) == {str(out / "model.onnx"), str(out / "model_int8.onnx")}
    assert (out / "tokenizer.json").is_file()
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 32


def test_cli_refuses_an_existing_output_and_names_it(tiny_model, tmp_path, capsys):
    out = tmp_path / "onnx"
    out.mkdir()
    assert main(["export-onnx", tiny_model, str(out)]) == 2
    assert f"export-onnx: {out} exists" in capsys.readouterr().err


def test_a_roberta_checkpoint_without_token_types_exports(tmp_path):
    config = RobertaConfig(
        vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=48, num_labels=3, pad_token_id=1, max_position_embeddings=64,
    )  # fmt: skip
    torch.manual_seed(0)
    ckpt = _pruned_checkpoint(
        RobertaForSequenceClassification(config).eval(), None, tmp_path / "roberta"
    )
    result = export_onnx(ckpt, tmp_path / "onnx")
    assert result.heads_per_layer == [2, 2]
    assert max_logit_difference(ckpt, result.fp32) < 1e-4


def test_export_onnx_without_overwrite_keeps_the_folder(tiny_model, tmp_path):
    out = tmp_path / "onnx"
    export_onnx(tiny_model, out)
    with pytest.raises(FileExistsError, match="exists"):
        export_onnx(tiny_model, out)
    assert export_onnx(tiny_model, out, overwrite=True).heads_per_layer == [2, 2]
