"""Time an evaluation of the full 30,000-row HANS set with the bundled MiniLM.

    .venv/bin/python bench/eval_hans.py [--batch-size 256] [--threads N] [--precision auto]
                                        [--no-baseline]

Loads the bundled official HANS TSV, tokenises it, predicts with length-sorted batches and
dynamic padding (`srcore.evaluation.predict`) and computes the HANS table. The model is
MiniLM with a fresh 3-way MNLI head: the numbers it predicts mean nothing, only the time does.
Prints seconds per phase and `seconds: X` for the whole evaluation in `--precision` (goal:
under 30 on 2 CPU cores). Then, unless --no-baseline, it predicts the same rows again in fp32
in the same process and prints `ratio: X` (fp32 predict time / candidate predict time) and how
many predictions the two agree on.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from srcore.data.loaders import eval_label_names, load_split
from srcore.evaluation import predict, split_metrics
from srcore.jobspec.spec import SourceSpec
from srcore.models import resolve_model_path
from srcore.training import configure_cpu_threads, describe_precision, encode_split, pick_device

MNLI = ("contradiction", "entailment", "neutral")
HANS = SourceSpec(format="hans_tsv", path="sample:hans/heuristics_evaluation_set.txt.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fp32 comparison")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    threads = configure_cpu_threads(args.threads)
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3).to(device)
    print(
        f"device {device}, {threads} threads, precision "
        f"{describe_precision(args.precision, device)}, batch {args.batch_size}, "
        f"torch {torch.__version__}, load avg {os.getloadavg()[0]:.2f}"
    )

    t0 = time.perf_counter()
    split = load_split(HANS, eval_label_names("hans", MNLI), "hans")
    t1 = time.perf_counter()
    encoded = encode_split(split, tokenizer, max_length=128)
    t2 = time.perf_counter()
    logits = predict(model, encoded, args.batch_size, device, args.precision)
    t3 = time.perf_counter()
    metrics = split_metrics(logits, encoded, "hans", MNLI)
    t4 = time.perf_counter()

    print(f"rows {len(encoded)}, mean {encoded.lengths.mean():.1f} tokens")
    print(f"load {t1 - t0:.2f}s, tokenise {t2 - t1:.2f}s, predict {t3 - t2:.2f}s, "
          f"metrics {t4 - t3:.3f}s")  # fmt: skip
    print(f"predict: {len(encoded) / (t3 - t2):.0f} examples/s; HANS accuracy (random head) "
          f"{metrics['accuracy']:.3f}; load avg after {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"seconds: {t4 - t0:.1f}  (whole evaluation, {args.precision}; goal < 30 on 2 cores)")

    if not args.no_baseline:
        b0 = time.perf_counter()
        base = predict(model, encoded, args.batch_size, device, "fp32")
        b1 = time.perf_counter()
        agree = float(np.mean(base.argmax(1) == logits.argmax(1)))
        diff = float(np.abs(base - logits).max())
        print(f"fp32 baseline predict {b1 - b0:.2f}s ({len(encoded) / (b1 - b0):.0f} examples/s);"
              f" same argmax on {agree:.2%} of rows; max |logit difference| {diff:.3f}; "
              f"load avg after {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"ratio: {(b1 - b0) / (t3 - t2):.2f}  (fp32 predict time / {args.precision})")


if __name__ == "__main__":
    main()
