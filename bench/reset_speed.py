"""Time of a τ reset of BERT-base-shaped mask scores: the earlier selection against the batched one.

    .venv/bin/python bench/reset_speed.py [--device cpu|cuda] [--repeats 3] [--sparsity 0.7]
                                          [--both-paths]

A reset sets, for every masked matrix, τ to its k-th smallest score (with the tie rule) so that
sparsity is exact. The gradual schedule resets after every ramp step, so its cost adds up over a
search. The scores are shaped as BERT-base's masked matrices: 12 layers × (query, key, value,
attention output: 768×768; intermediate 3072×768; output 768×3072), the pooler (768×768) and
the classifier (3×768) — 85.6M scores in 74 matrices. They are random with a block of exact ties
per matrix (the hard init's 0 / 2τ values that never moved), so the tie path is exercised.

- old: the earlier `lowest_k_split` per matrix (numpy introselect on the CPU, `torch.kthvalue`
  elsewhere, two host syncs per matrix);
- new: `srcore.pruning.selection.lowest_k_splits` over all matrices (numpy on the CPU, a
  row-wise sort of same-size stacks elsewhere, one host sync per stack).
`--both-paths` also times the accelerator algorithms on the device at hand (kthvalue per matrix
against the batched sort), the pair a GPU runs — on a CPU that is only a sanity figure.
Each result is checked equal (threshold and tie mask) between old and new. Prints seconds per
reset and `ratio: old / new`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from srcore.pruning.selection import lowest_k_splits, pruned_count
from srcore.training import configure_cpu_threads, pick_device

HIDDEN, INTERMEDIATE, LAYERS, LABELS = 768, 3072, 12, 3


def bert_base_shapes() -> list[tuple[int, int]]:
    layer = [(HIDDEN, HIDDEN)] * 4 + [(INTERMEDIATE, HIDDEN), (HIDDEN, INTERMEDIATE)]
    return layer * LAYERS + [(HIDDEN, HIDDEN), (LABELS, HIDDEN)]


def make_scores(device: torch.device, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for shape in bert_base_shapes():
        scores = torch.rand(shape, generator=gen) * 0.04
        scores.view(-1)[: scores.numel() // 10] = 0.02  # a tie block at 2τ
        out.append(scores.to(device))
    return out


# --- the earlier selection, kept here as the baseline ---------------------------------------


def old_split_kthvalue(flat: torch.Tensor, k: int, shape: torch.Size):
    t = torch.kthvalue(flat, k).values
    below = int((flat < t).sum())
    at = flat == t
    if below + int(at.sum()) == k:
        return t, None
    return t, (at & (at.cumsum(0) > k - below)).view(shape)


def old_split_numpy(flat: torch.Tensor, k: int, shape: torch.Size):
    arr = flat.numpy()
    kth = np.partition(arr, k - 1)[k - 1]
    t = torch.tensor(kth.item(), dtype=flat.dtype)
    below = int(np.count_nonzero(arr < kth))
    at = arr == kth
    if below + int(np.count_nonzero(at)) == k:
        return t, None
    return t, torch.from_numpy(at & (np.cumsum(at) > k - below)).view(shape)


def old_reset(scores: list[torch.Tensor], ks: list[int], kthvalue: bool):
    out = []
    for s, k in zip(scores, ks, strict=True):
        flat = s.reshape(-1)
        if k <= 0 or k >= flat.numel():
            raise ValueError("the bench uses 0 < k < n")
        use_kthvalue = kthvalue or flat.device.type != "cpu"
        split = old_split_kthvalue if use_kthvalue else old_split_numpy
        out.append(split(flat, k, s.shape))
    return out


# --- timing ----------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up (kernels, allocator), also the result that is checked
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def same_splits(a, b) -> bool:
    for (ta, tie_a), (tb, tie_b) in zip(a, b, strict=True):
        if not torch.equal(ta.cpu(), tb.cpu()) or (tie_a is None) != (tie_b is None):
            return False
        if tie_a is not None and not torch.equal(tie_a.cpu(), tie_b.cpu()):
            return False
    return True


def compare(name: str, old: Callable, new: Callable, device: torch.device, repeats: int) -> float:
    old_s, old_result = timed(old, device, repeats)
    new_s, new_result = timed(new, device, repeats)
    if not same_splits(old_result, new_result):
        raise SystemExit(f"{name}: old and new selections differ")
    ratio = old_s / new_s
    print(f"{name:<34} old {old_s:8.3f} s   new {new_s:8.3f} s   ratio: {ratio:.2f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="default: the GPU if any, else the CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sparsity", type=float, default=0.7)
    parser.add_argument("--both-paths", action="store_true")
    args = parser.parse_args()

    device = pick_device(args.device)
    threads = configure_cpu_threads()
    scores = make_scores(device)
    ks = [pruned_count(s.numel(), args.sparsity) for s in scores]
    numel = sum(s.numel() for s in scores)
    where = f"cpu, {threads} threads"
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    print(f"device: {device} ({where}); {len(scores)} matrices, {numel / 1e6:.1f}M scores, "
          f"sparsity {args.sparsity:g}, median of {args.repeats}")  # fmt: skip
    compare(
        "reset (this device's path)",
        lambda: old_reset(scores, ks, kthvalue=False),
        lambda: lowest_k_splits(scores, ks),
        device,
        args.repeats,
    )
    if args.both_paths:
        compare(
            "kthvalue per matrix vs batched sort",
            lambda: old_reset(scores, ks, kthvalue=True),
            lambda: lowest_k_splits(scores, ks, sort=True),
            device,
            max(1, math.ceil(args.repeats / 3)),
        )


if __name__ == "__main__":
    main()
