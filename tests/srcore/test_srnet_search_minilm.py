"""`srnet search` end to end on the bundled MiniLM with real MNLI and HANS rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

from srcore.pruning import load_masks, prunable_weights

SPEC = {
    "name": "minilm mnli poe 50%",
    "task": "mnli",
    "model": {"name_or_path": "all-MiniLM-L6-v2"},
    "data": {"max_train_examples": 256, "max_eval_examples": 160},
    "debias": {"loss": "poe"},
    "pruning": {"method": "mask_training", "sparsities": [0.5]},
    "dense": {"max_steps": 16, "learning_rate": 1e-4},
    "training": {"max_steps": 16, "eval_every": 8, "batch_size": 16, "learning_rate": 1e-3},
    "evaluation": {"batch_size": 160},
}


@pytest.mark.slow
def test_srnet_search_cli_on_minilm(tmp_path: Path):
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(SPEC))
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "srnet", "search", str(spec_path), "--out", str(out)],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[search]" in proc.stderr and "eval search step 16" in proc.stderr

    # trainer checkpoints are dropped after success; the stage cache stays for reuse
    assert sorted(p.name for p in (out / "work").iterdir()) == ["cache"]
    report = json.loads((out / "metrics.json").read_text())
    (unit,) = report["results"]
    assert unit["sparsity"] == 0.5 and unit["selected_step"] == 16
    assert {k: report["data"][k] for k in ("train", "dev", "ood")} == {
        "train": 256, "dev": 160, "ood": {"hans": 160}}  # fmt: skip
    assert report["data"]["train_source"]["path"].startswith("sample:")
    hans = unit["metrics"]["hans"]
    assert 0.0 <= hans["accuracy"] <= 1.0 and "lexical_overlap" in json.dumps(hans)
    assert report["bias"]["kind"] == "overlap_2way" and report["bias"]["n"] == 256
    assert (out / "report.png").stat().st_size > 1000

    mask_file = out / "masks" / "seed-1" / "mask-0.50.safetensors"
    masks, meta = load_masks(mask_file)
    n_weights = sum(m.numel() for m in masks.values())
    assert mask_file.stat().st_size < n_weights / 8 * 1.05  # bit-packed
    model = AutoModelForSequenceClassification.from_pretrained(
        out / "checkpoints" / "seed-1" / "sparsity-0.50"
    )
    assert model.config.id2label[1] == "entailment"
    params = dict(model.named_parameters())
    names = prunable_weights(model, include_classifier=True)
    zeros = sum(int((params[n] == 0).sum()) for n in names)
    assert abs(zeros / n_weights - 0.5) < 1e-3
    assert meta["sparsity"]["sparsity_over_masked_weights"] == pytest.approx(0.5, abs=1e-3)
