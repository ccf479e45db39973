"""Size of a bit-packed srnet mask file against a dense float32 mask of the same model.

    .venv/bin/python bench/mask_size.py [--sparsity 0.5] [--no-bert-base]

Models: the bundled all-MiniLM-L6-v2 and a BERT-base built from `BertConfig()` with random
weights (nothing is downloaded). Masks cover what mask training prunes (encoder matrices,
pooler, classifier). Both files are really written (safetensors) and measured on disk.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
)
from transformers.utils import logging as hf_logging

from srcore.models import resolve_model_path
from srcore.pruning import (
    load_masks,
    magnitude_masks,
    prunable_weights,
    save_masks,
    sparsity_report,
)


def measure(label: str, model: torch.nn.Module, sparsity: float, tmp: Path) -> float:
    names = prunable_weights(model, include_classifier=True)
    masks = magnitude_masks(model, names, sparsity)
    n = sum(m.numel() for m in masks.values())
    ours = tmp / f"{label}-bits.safetensors"
    t0 = time.perf_counter()
    save_masks(ours, masks, {"sparsity_report": sparsity_report(masks, model), "threshold": 0.01})
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    loaded, _ = load_masks(ours)
    load_s = time.perf_counter() - t0
    assert all(torch.equal(loaded[k], v) for k, v in masks.items())
    dense = tmp / f"{label}-float32.safetensors"
    save_file({k: v.float() for k, v in masks.items()}, str(dense))
    ours_b, dense_b = ours.stat().st_size, dense.stat().st_size
    ratio = dense_b / ours_b
    print(
        f"{label:<24} {len(names):>4} {n:>12,} {ours_b / 1e6:>10.2f} MB {dense_b / 1e6:>10.1f} MB"
        f" {ratio:>7.2f}x   save {save_s:.2f}s load {load_s:.2f}s"
    )
    dense.unlink()
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--no-bert-base", action="store_true")
    args = parser.parse_args()
    hf_logging.set_verbosity_error()  # the random classifier's "MISSING" load report
    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    print(f"{'model':<24} {'mats':>4} {'masked wts':>12} {'bit-packed':>13} {'float32':>13} ratio")
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        minilm = AutoModelForSequenceClassification.from_pretrained(
            resolve_model_path("all-MiniLM-L6-v2"), num_labels=3
        )
        ratios["all-MiniLM-L6-v2"] = measure("all-MiniLM-L6-v2", minilm, args.sparsity, tmp)
        del minilm
        if not args.no_bert_base:
            bert = BertForSequenceClassification(BertConfig(num_labels=3))
            ratios["bert-base (random)"] = measure("bert-base", bert, args.sparsity, tmp)
    for label, ratio in ratios.items():
        print(f"ratio: {ratio:.2f}  ({label}: float32 mask bytes / bit-packed mask bytes)")


if __name__ == "__main__":
    main()
