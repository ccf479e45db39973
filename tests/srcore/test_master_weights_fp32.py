"""Master weights stay fp32: a bf16- or fp16-stored checkpoint loads, trains and exports in
fp32 (transformers 5 keeps a checkpoint's stored dtype unless told otherwise)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from srcore.export import export_checkpoint
from srcore.pipeline.inputs import load_model
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split
from tests.helpers.tiny_bert import random_pair_split, tiny_bert, tiny_tokenizer, torch_threads
from tests.helpers.tiny_model_dir import save_tiny_model

LABELS = ("contradiction", "entailment", "neutral")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with torch_threads(1):
        yield


def safetensors_dtypes(path: Path) -> set[str]:
    """The dtypes named in a safetensors file's JSON header (8-byte length, then JSON)."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    return {entry["dtype"] for key, entry in header.items() if key != "__metadata__"}


def half_checkpoint(directory: Path, dtype: torch.dtype) -> Path:
    """A tiny BERT directory whose weights are stored in `dtype`."""
    save_tiny_model(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).to(dtype)
    model.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_half_stored_checkpoint_trains_and_exports_in_fp32(tmp_path, dtype):
    source = half_checkpoint(tmp_path / "model", dtype)
    floats = {d for d in safetensors_dtypes(source / "model.safetensors") if d != "I64"}
    assert floats == {"BF16" if dtype == torch.bfloat16 else "F16"}  # the file really is half

    model = load_model(str(source), LABELS, seed=0)
    assert {p.dtype for p in model.parameters()} == {torch.float32}

    tok = tiny_tokenizer([])
    train = encode_split(random_pair_split(24, seed=0), tok, max_length=24)
    config = TrainerConfig(max_steps=3, batch_size=8, lr=1e-3, precision="fp32")
    trainer = Trainer(model, train, config, debias_loss_fn("none"))
    trainer.run()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    moments = [
        value
        for state in trainer.optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim > 0
    ]
    assert len(moments) == 2 * len(trainer.trainable)  # exp_avg and exp_avg_sq per tensor
    assert {m.dtype for m in moments} == {torch.float32}

    out = export_checkpoint(model, tok, LABELS, tmp_path / "export")
    floats = {d for d in safetensors_dtypes(out / "model.safetensors") if d != "I64"}
    assert floats == {"F32"}
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"


def test_export_writes_fp32_from_a_half_model(tmp_path):
    tok = tiny_tokenizer([])
    model = tiny_bert(tok, num_labels=3).to(torch.bfloat16)
    out = export_checkpoint(model, tok, LABELS, tmp_path / "export")
    assert {d for d in safetensors_dtypes(out / "model.safetensors") if d != "I64"} == {"F32"}
    reloaded = AutoModelForSequenceClassification.from_pretrained(out, dtype="auto")
    assert {p.dtype for p in reloaded.parameters()} == {torch.float32}


def test_trainer_refuses_half_master_weights():
    tok = tiny_tokenizer([])
    model = tiny_bert(tok, num_labels=3).to(torch.bfloat16)
    train = encode_split(random_pair_split(8, seed=0), tok, max_length=24)
    with pytest.raises(ValueError, match=r"float32 \(master weights\), got torch.bfloat16"):
        Trainer(model, train, TrainerConfig(max_steps=1), debias_loss_fn("none"))
