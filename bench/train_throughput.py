"""Training throughput: our Trainer against a naive fp32 loop, same model, same real MNLI rows.

    .venv/bin/python bench/train_throughput.py [--steps 20] [--batch-size 32] [--threads N]
                                               [--precision auto|bf16|fp32] [--no-fp32-trainer]

The naive loop pads every pair to 128 tokens, takes batches in plain shuffled order, runs in
fp32 and uses per-tensor AdamW; the Trainer pads each batch to its longest pair, groups pairs
of similar length, uses the fused AdamW and `precision` (auto: bf16 autocast where the
hardware multiplies bf16 natively). Both run the same number of optimizer steps over the same
rows (one epoch of steps × batch size rows) in this process, alternating (naive, ours, ours,
naive) so a change in machine load hits both; each side is scored by its best run (the least
disturbed by other work on a shared machine). One run of the Trainer in fp32 shows how much of
the ratio is bf16.

It also prints useful model FLOP/s, 6 · (prunable-matrix parameters) · (real tokens/s) — the
forward and backward multiply-adds of the encoder's matrices on the tokens that are not
padding — against bf16 and fp32 matrix-multiply ceilings measured in the same run (square-ish
GEMMs of the model's shapes, same threads).
Prints `ratio: X` (ours / naive examples/s).
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
from srcore.pruning import prunable_weights
from srcore.training import (
    Trainer,
    TrainerConfig,
    configure_cpu_threads,
    debias_loss_fn,
    describe_precision,
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


def our_trainer(model, encoded, batch_size, steps, device, seed, precision) -> float:
    config = TrainerConfig(
        max_steps=steps, batch_size=batch_size, lr=5e-5, seed=seed, precision=precision
    )
    result = Trainer(model, encoded, config, debias_loss_fn("none"), device=device).run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result.examples_per_s


def matmul_ceiling(dtype: torch.dtype, device, shapes, seconds: float = 0.6) -> float:
    """Best FLOP/s of plain GEMMs (m, k) @ (k, n) in `dtype` over `shapes`."""
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        for _ in range(3):
            a @ b
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if elapsed > seconds:
                break
        best = max(best, 2 * m * k * n * reps / elapsed)
    return best


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
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--no-fp32-trainer", action="store_true", help="skip the fp32 Trainer run")
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
    mean_tokens = float(encoded.lengths.mean())
    print(
        f"device {device}, {threads} threads, {os.cpu_count()} CPUs ({cpu_model()}), "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )
    print(
        f"{n} MNLI rows, mean {mean_tokens:.1f} tokens (max 128); "
        f"{args.steps} steps of {args.batch_size}; trainer precision "
        f"{describe_precision(args.precision, device)}; load avg {os.getloadavg()[0]:.2f}"
    )

    def fresh_model():
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
        return model.to(device)

    probe = fresh_model()
    matrices = dict(probe.named_parameters())
    # per-token matrices: the encoder's 6 per layer (the pooler and head see one token a pair)
    names = [m for m in prunable_weights(probe, include_classifier=False) if ".layer." in m]
    prunable = sum(matrices[m].numel() for m in names)
    hidden = probe.config.hidden_size
    inter = probe.config.intermediate_size
    del probe

    # a short warm-up of each path (allocator, oneDNN kernels)
    naive_loop(fresh_model(), tokenizer, split, args.batch_size, 2, device, 1)
    our_trainer(fresh_model(), encoded, args.batch_size, 2, device, 1, args.precision)

    naive, ours = [], []
    for first in ("naive", "ours", "ours", "naive"):
        if first == "naive":
            naive.append(naive_loop(fresh_model(), tokenizer, split, args.batch_size,
                                    args.steps, device, 0))  # fmt: skip
        else:
            ours.append(our_trainer(fresh_model(), encoded, args.batch_size, args.steps,
                                    device, 0, args.precision))  # fmt: skip
    ours_fp32 = None
    if not args.no_fp32_trainer and args.precision != "fp32":
        ours_fp32 = our_trainer(fresh_model(), encoded, args.batch_size, args.steps, device, 0,
                                "fp32")  # fmt: skip

    # matmul ceilings at the model's shapes: (batch tokens × hidden) @ (hidden × 4·hidden) etc.
    tokens = int(args.batch_size * mean_tokens)
    shapes = [(tokens, hidden, inter), (tokens, inter, hidden), (tokens, hidden, hidden)]
    ceil_bf16 = matmul_ceiling(torch.bfloat16, device, shapes)
    ceil_fp32 = matmul_ceiling(torch.float32, device, shapes)

    naive_eps, ours_eps = max(naive), max(ours)
    runs = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    print(f"naive loop (pad to 128, shuffled, fp32): {naive_eps:8.1f} examples/s  "
          f"(runs {runs(naive)})")  # fmt: skip
    print(f"our trainer ({args.precision}, length-grouped):   {ours_eps:8.1f} examples/s  "
          f"(runs {runs(ours)})")  # fmt: skip
    if ours_fp32 is not None:
        print(f"our trainer (fp32, length-grouped):      {ours_fp32:8.1f} examples/s  "
              f"(one run; ratio to naive {ours_fp32 / naive_eps:.2f})")  # fmt: skip

    def useful(eps: float) -> float:
        return 6 * prunable * eps * mean_tokens

    print(f"prunable per-token matrices: {len(names)}, {prunable / 1e6:.2f} M parameters; "
          f"useful FLOP = 6 x params x real tokens")  # fmt: skip
    print(f"matmul ceiling ({threads} threads, shapes {shapes}): "
          f"bf16 {ceil_bf16 / 1e9:.1f} GFLOP/s, fp32 {ceil_fp32 / 1e9:.1f} GFLOP/s "
          f"(bf16/fp32 {ceil_bf16 / ceil_fp32:.2f})")  # fmt: skip
    for label, eps in (("naive", naive_eps), ("ours", ours_eps), ("ours fp32", ours_fp32)):
        if eps is None:
            continue
        u = useful(eps)
        print(f"useful FLOP/s {label:9s}: {u / 1e9:6.1f} GFLOP/s = "
              f"{u / ceil_bf16:.1%} of the bf16 ceiling, {u / ceil_fp32:.1%} of fp32")  # fmt: skip
    print(f"load avg after: {os.getloadavg()[0]:.2f}")
    print(f"ratio: {ours_eps / naive_eps:.2f}  (ours / naive fp32 examples/s; goal >= 6, 1 thread)")


if __name__ == "__main__":
    main()
