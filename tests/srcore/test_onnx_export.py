"""ONNX export of a structured checkpoint: neurons and heads gone, the numbers recomputed by
ONNX Runtime agree with the PyTorch evaluation of the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx  # the optional `onnx` extra: ./scripts/setup installs it, so no skip
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from srcore.data.loaders import load_split
from srcore.evaluation import accuracy, predict
from srcore.export import export_checkpoint
from srcore.export_onnx import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    drop_zeroed_heads,
    export_onnx,
    onnx_logits,
    onnx_session,
    predict_onnx,
)
from srcore.jobspec.task_registry import TASKS
from srcore.models import resolve_model_path
from srcore.pruning.structured import structure_units, unit_magnitude_masks
from srcore.training import encode_split
from srcore.training.batching import collate

LABELS = TASKS["mnli"].labels
ROWS = 240  # real MNLI dev_matched pairs


def _minilm() -> torch.nn.Module:
    torch.manual_seed(0)  # the fresh 3-way head
    return AutoModelForSequenceClassification.from_pretrained(
        resolve_model_path("all-MiniLM-L6-v2"), num_labels=len(LABELS)
    ).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MiniLM pruned to 50% FFN neurons and 50% heads by magnitude, as a job exports it; its
    ONNX export (fp32 and int8); a dense checkpoint's ONNX export for the sizes."""
    root = tmp_path_factory.mktemp("onnx")
    model = _minilm()
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    masks = unit_magnitude_masks(model, structure_units(model, "ffn_neurons+heads"), 0.5)
    ckpt = export_checkpoint(
        model, tokenizer, LABELS, root / "ckpt", masks=masks, shrink_ffn_neurons=True
    )
    dense = export_checkpoint(model, tokenizer, LABELS, root / "dense")
    return {
        "ckpt": ckpt,
        "onnx": export_onnx(ckpt, root / "onnx", int8=True).folder,
        "dense_onnx": export_onnx(dense, root / "dense_onnx").folder,
    }


@pytest.fixture(scope="module")
def mnli_dev(exported) -> object:
    split = load_split(TASKS["mnli"].dev, LABELS, "dev")
    split = split.__class__(**{**split.__dict__, "examples": split.examples[:ROWS]})
    tokenizer = AutoTokenizer.from_pretrained(exported["ckpt"])
    return encode_split(split, tokenizer, max_length=128)


def _float_initializer_elements(path: Path) -> int:
    graph = onnx.load(str(path)).graph
    return sum(
        int(np.prod(t.dims)) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    )


def test_onnx_accuracy_and_logits_match_the_pytorch_evaluation(exported, mnli_dev):
    model = AutoModelForSequenceClassification.from_pretrained(exported["ckpt"]).eval()
    torch_logits = predict(model, mnli_dev, batch_size=64, precision="fp32")
    onnx_out = predict_onnx(onnx_session(exported["onnx"] / ONNX_FILE, threads=1), mnli_dev)
    assert np.abs(onnx_out - torch_logits).max() < 1e-4
    gold = mnli_dev.labels
    torch_acc = accuracy(torch_logits.argmax(1), gold)
    onnx_acc = accuracy(onnx_out.argmax(1), gold)
    assert abs(100 * (onnx_acc - torch_acc)) <= 0.5
    # int8 weights: a different model numerically (max logit difference ~0.01 here), so
    # argmaxes of the fresh head's near-tied logits flip for some pairs (90.8 % agree here).
    int8 = predict_onnx(onnx_session(exported["onnx"] / ONNX_INT8_FILE, threads=1), mnli_dev)
    assert np.abs(int8 - torch_logits).max() < 0.1
    assert np.mean(int8.argmax(1) == torch_logits.argmax(1)) >= 0.85


def test_padding_is_masked_in_the_onnx_graph(exported, mnli_dev):
    """A pair's logits do not change when it is padded beside a longer pair."""
    session = onnx_session(exported["onnx"] / ONNX_FILE, threads=1)
    short = int(np.argmin(mnli_dev.lengths))
    longest = int(np.argmax(mnli_dev.lengths))
    alone = onnx_logits(session, collate(mnli_dev, np.array([short])).inputs)
    padded = onnx_logits(session, collate(mnli_dev, np.array([longest, short])).inputs)
    assert mnli_dev.lengths[longest] > mnli_dev.lengths[short]
    np.testing.assert_allclose(padded[1], alone[0], atol=1e-5)


def test_pruned_heads_and_neurons_are_gone_from_the_onnx_graph(exported):
    dense = _float_initializer_elements(exported["dense_onnx"] / ONNX_FILE)
    pruned = _float_initializer_elements(exported["onnx"] / ONNX_FILE)
    # MiniLM: 6 layers, hidden 384, 12 heads of 32, FFN 1536. Half the neurons: 768 rows,
    # biases and columns per layer; half the heads: 6 × 32 rows (+ biases) of Q, K, V and
    # 6 × 32 columns of the attention output per layer.
    neurons = 6 * 768 * (384 + 1 + 384)
    heads = 6 * (3 * 192 * (384 + 1) + 384 * 192)
    assert dense - pruned == neurons + heads
    config = json.loads((exported["onnx"] / "config.json").read_text())
    assert config["intermediate_size"] == 768
    assert config["id2label"] == {str(i): name for i, name in enumerate(LABELS)}
    int8_size = (exported["onnx"] / ONNX_INT8_FILE).stat().st_size
    assert int8_size < 0.4 * (exported["onnx"] / ONNX_FILE).stat().st_size


def test_drop_zeroed_heads_keeps_the_logits(exported):
    model = AutoModelForSequenceClassification.from_pretrained(
        exported["ckpt"], attn_implementation="eager"
    ).eval()
    ids = torch.randint(1000, 20000, (3, 17), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[2, 9:] = 0
    with torch.no_grad():
        before = model(input_ids=ids, attention_mask=mask).logits
        assert drop_zeroed_heads(model) == [6] * 6
        after = model(input_ids=ids, attention_mask=mask).logits
    attention = model.bert.encoder.layer[0].attention
    assert attention.self.query.out_features == 6 * 32
    assert attention.output.dense.in_features == 6 * 32
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_a_layer_with_every_head_pruned_is_refused():
    model = _minilm()
    with torch.no_grad():
        for name in ("query", "key", "value"):
            linear = getattr(model.bert.encoder.layer[3].attention.self, name)
            linear.weight.zero_()
            linear.bias.zero_()
        model.bert.encoder.layer[3].attention.output.dense.weight.zero_()
    with pytest.raises(ValueError, match="encoder layer 3: every attention head is pruned"):
        drop_zeroed_heads(model)


def test_a_folder_without_a_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        export_onnx(tmp_path, tmp_path / "out")
