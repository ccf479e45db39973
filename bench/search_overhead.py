"""Cost of a mask-training step against a dense fine-tuning step, and a whole search's speed.

    .venv/bin/python bench/search_overhead.py [--steps 20] [--batch 32] [--search]
                                              [--precision auto|bf16|fp32]

Both steps run on the bundled MiniLM with the same real MNLI batches (dynamic padding), side
by side in this process, alternating so that machine noise hits both alike:
- dense: forward, backward, AdamW over every weight;
- mask: forward through W ⊙ 1[S > τ], straight-through backward to the scores, AdamW over
  the scores only (weights frozen).
Both run under the same `--precision` (auto: bf16 autocast where the hardware multiplies
bf16 natively, as the Trainer does; the loss in fp32, scores and masks fp32).
Prints `ratio: X` = mask step time / dense step time. `--search` also runs a small whole
search (dense fine-tune + mask training + evaluation) and prints its training examples/s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from srcore.data.loaders import load_split
from srcore.jobspec.spec import SourceSpec
from srcore.losses import debias_loss
from srcore.models import resolve_model_path
from srcore.pipeline.inputs import load_model, load_tokenizer
from srcore.pruning import ScoreMasker, prunable_weights
from srcore.training import (
    autocast,
    collate,
    configure_cpu_threads,
    describe_precision,
    encode_split,
    pick_device,
)

LABELS = ("contradiction", "entailment", "neutral")


def batches(n_batches: int, batch_size: int, tokenizer):
    split = load_split(
        SourceSpec(format="pair_json", path="sample:mnli/train.json"),
        LABELS,
        "train",
        max_examples=n_batches * batch_size,
    )
    encoded = encode_split(split, tokenizer, 128)
    ids = list(range(len(encoded)))
    return [collate(encoded, ids[i : i + batch_size]) for i in range(0, len(ids), batch_size)]


def timed_step(model, params, optimizer, batch, device, precision) -> float:
    batch = batch.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with autocast(device, precision):
        logits = model(**batch.inputs).logits
    loss = debias_loss("none", logits.float(), batch.labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def step_ratio(steps: int, batch_size: int, precision: str) -> None:
    device = pick_device()
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = load_tokenizer(path)
    data = batches(steps + 2, batch_size, tokenizer)

    dense = load_model(path, LABELS, seed=0).to(device).train()
    dense_params = [p for p in dense.parameters() if p.requires_grad]
    dense_opt = torch.optim.AdamW(dense_params, lr=2e-5, fused=True)  # as the Trainer

    masked = load_model(path, LABELS, seed=0).to(device).train()
    masker = ScoreMasker(masked, prunable_weights(masked, include_classifier=True), 0.5)
    mask_params = masker.parameters()
    mask_opt = torch.optim.AdamW(mask_params, lr=5e-5, fused=True)

    # warm-up (allocator, kernels) for both, not timed
    for batch in data[:2]:
        timed_step(dense, dense_params, dense_opt, batch, device, precision)
        timed_step(masked, mask_params, mask_opt, batch, device, precision)
    dense_t, mask_t = [], []
    for batch in data[2:]:
        dense_t.append(timed_step(dense, dense_params, dense_opt, batch, device, precision))
        mask_t.append(timed_step(masked, mask_params, mask_opt, batch, device, precision))
    d, m = statistics.median(dense_t), statistics.median(mask_t)
    print(f"device: {device}, threads: {torch.get_num_threads()}, batch {batch_size}, "
          f"precision {describe_precision(precision, device)}, "
          f"{len(dense_t)} timed steps each (median)")  # fmt: skip
    print(f"dense fine-tuning step: {1000 * d:.1f} ms ({batch_size / d:.1f} examples/s)")
    print(f"mask-training step:     {1000 * m:.1f} ms ({batch_size / m:.1f} examples/s)")
    print(f"ratio: {m / d:.2f}  (mask step / dense step)")


def whole_search() -> None:
    from srcore.jobspec.callbacks import Callbacks
    from srcore.jobspec.spec import JobSpec
    from srcore.pipeline import run_search

    class Speed(Callbacks):
        def __init__(self) -> None:
            self.last: dict[str, float] = {}

        def on_progress(self, progress) -> None:
            if progress.examples_per_s:
                self.last[progress.stage] = progress.examples_per_s

    spec = JobSpec.model_validate(
        {
            "task": "mnli",
            "data": {"max_train_examples": 1024, "max_eval_examples": 500},
            "debias": {"loss": "poe"},
            "dense": {"max_steps": 32},
            "training": {"max_steps": 64, "eval_every": 32, "learning_rate": 1e-3},
        }
    )
    speed = Speed()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        run_search(spec, Path(out), speed)
        wall = time.perf_counter() - start
    print(f"whole search (1,024 MNLI rows, dense 32 + mask 64 steps of 32, 2 evaluations of "
          f"500 dev + 500 HANS rows each): {wall:.0f} s wall")  # fmt: skip
    for stage, value in speed.last.items():
        print(f"  {stage}: {value:.1f} training examples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--search", action="store_true", help="also time a whole search")
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    args = parser.parse_args()
    configure_cpu_threads()
    step_ratio(args.steps, args.batch, args.precision)
    if args.search:
        whole_search()


if __name__ == "__main__":
    main()
