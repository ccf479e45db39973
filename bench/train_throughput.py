"""Training throughput: our Trainer against a naive loop, same model, same real MNLI rows.

    .venv/bin/python bench/train_throughput.py [--steps 20] [--batch-size 32] [--threads N]

The naive loop pads every pair to 128 tokens and takes batches in plain shuffled order; the
Trainer pads each batch to its longest pair and groups pairs of similar length. Both run the
same number of optimizer steps over the same rows (one epoch of steps × batch size rows) in
this process, alternating (naive, ours, ours, naive) so a change in machine load hits both;
each side is scored by its best run (the least disturbed by other work on a shared machine).
Prints examples/s of each and `ratio: X` (ours / naive).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from srcore.data.loaders import load_split
from srcore.jobspec.spec import SourceSpec
from srcore.losses import cross_entropy
from srcore.models import resolve_model_path
from srcore.training import (
    Trainer,
    TrainerConfig,
    configure_cpu_threads,
    debias_loss_fn,
    encode_split,
    pick_device,
)

MNLI = ("contradiction", "entailment", "neutral")


def naive_loop(model, tokenizer, split, batch_size: int, steps: int, device, seed: int) -> float:
    """Examples/s of a textbook loop: fixed padding to 128, shuffled batches, fp32."""
    enc = tokenizer(
        [e.text_a for e in split.examples],
        [e.text_b for e in split.examples],
        truncation=True,
        max_length=128,
        padding="max_length",
        return_tensors="pt",
    )
    labels = torch.tensor([e.label for e in split.examples])
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        rows = order[step * batch_size : (step + 1) * batch_size]
        inputs = {k: v[rows].to(device) for k, v in enc.items()}
        logits = model(**inputs).logits
        loss = cross_entropy(logits, labels[rows].to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - start)


def our_trainer(model, encoded, batch_size: int, steps: int, device, seed: int) -> float:
    config = TrainerConfig(max_steps=steps, batch_size=batch_size, lr=5e-5, seed=seed)
    result = Trainer(model, encoded, config, debias_loss_fn("none"), device=device).run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result.examples_per_s


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    threads = configure_cpu_threads(args.threads)
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    n = args.steps * args.batch_size
    source = SourceSpec(format="pair_json", path="sample:mnli/train.json")
    split = load_split(source, MNLI, "train", max_examples=n, seed=0)
    encoded = encode_split(split, tokenizer, max_length=128)
    print(
        f"device {device}, {threads} threads, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"{n} MNLI rows, mean {encoded.lengths.mean():.1f} tokens (max 128); "
        f"{args.steps} steps of {args.batch_size}; load avg {os.getloadavg()[0]:.2f}"
    )

    def fresh_model():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
        return model.to(device)

    # a short warm-up of each path (allocator, oneDNN kernels)
    naive_loop(fresh_model(), tokenizer, split, args.batch_size, 2, device, 1)
    our_trainer(fresh_model(), encoded, args.batch_size, 2, device, 1)

    naive, ours = [], []
    for first in ("naive", "ours", "ours", "naive"):
        if first == "naive":
            naive.append(naive_loop(fresh_model(), tokenizer, split, args.batch_size,
                                    args.steps, device, 0))  # fmt: skip
        else:
            ours.append(our_trainer(fresh_model(), encoded, args.batch_size, args.steps, device, 0))
    naive_eps, ours_eps = max(naive), max(ours)
    runs = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    print(f"naive loop (pad to 128, shuffled): {naive_eps:8.1f} examples/s  (runs {runs(naive)})")
    print(f"our trainer (length-grouped):      {ours_eps:8.1f} examples/s  (runs {runs(ours)})")
    print(f"load avg after: {os.getloadavg()[0]:.2f}")
    print(f"ratio: {ours_eps / naive_eps:.2f}")


if __name__ == "__main__":
    main()
