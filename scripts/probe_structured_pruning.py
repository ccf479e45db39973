"""How much one-shot removal of whole FFN neurons costs a fine-tuned model before any training:
keep the largest-norm units, the smallest, or random ones, at 30% and 50%, and print dev
accuracy and the predicted class counts. A probe behind the structured study's collapse
(docs/results.md), one dense model and a dev sample, not a study.

usage: python scripts/probe_structured_pruning.py DENSE_MODEL_DIR [DEV_ROWS]
  DENSE_MODEL_DIR: a fine-tuned checkpoint, e.g. a dense entry of a study's stage cache
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification

from srcore.evaluation import predict
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.inputs import load_job_data
from srcore.pruning.structured import mask_shapes, masks_from_norms, structure_units, unit_norms


def main(model_dir: str, rows: int = 400) -> None:
    torch.set_num_threads(1)
    spec = JobSpec.model_validate(
        {"task": "mnli", "data": {"max_train_examples": 16, "max_eval_examples": rows}}
    )
    dev = next(s for s in load_job_data(spec).eval_sets if s.name == "dev")

    def load() -> torch.nn.Module:
        return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()

    def score(model: torch.nn.Module) -> str:
        predicted = predict(model, dev.encoded, 128).argmax(1)
        counts = np.bincount(predicted, minlength=3).tolist()
        return f"dev {np.mean(predicted == dev.encoded.labels):.3f}, predicted classes {counts}"

    model = load()
    print(f"dense: {score(model)}")
    units = structure_units(model, "ffn_neurons")
    norms = unit_norms(model, units)
    generator = torch.Generator().manual_seed(0)
    orders = {
        "keep largest norms": norms,
        "keep smallest norms": [-n for n in norms],
        "keep random units": [torch.rand(n.shape, generator=generator) for n in norms],
    }
    for name, keys in orders.items():
        for sparsity in (0.3, 0.5):
            pruned = load()
            masks = masks_from_norms(units, keys, mask_shapes(pruned, units), sparsity)
            with torch.no_grad():
                for param_name, param in pruned.named_parameters():
                    if param_name in masks:
                        param.mul_(masks[param_name].to(param.dtype))
            print(f"{name}, {100 * sparsity:g}% of FFN neurons removed: {score(pruned)}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
