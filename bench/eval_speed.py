"""A job's evaluation, before and after sorting/padding once and freezing the weights: time,
useful FLOP/s against the bf16 matmul ceiling of the same run, and whether the logits match.

    .venv/bin/python bench/eval_speed.py [--threads 1] [--rows 2000] [--rounds 2]
                                         [--precision auto] [--exact-rows 300] [--full-hans]

The sets are the fixed job's (bench/job_time.py): 2,000 bundled MNLI dev pairs and 2,000
HANS pairs (seeded samples, as `data.max_eval_examples` draws them), MiniLM with a fresh
3-way head, evaluated as a dense model and as a 50% mask-training model (soft init, the
search stage's parametrized weights). The baseline is the evaluation as it was: every
evaluation sorts and collates each batch again and each forward reads every weight (running
its mask parametrization and autocast's cast on every batch). The candidate is
`srcore.evaluation.make_evaluate_fn` now. The two take turns (baseline, ours, ours,
baseline per round); each side is scored by its best round. Useful FLOP = 2 · P · real
tokens, P = the encoder's per-token matrices. `--exact-rows` rows per set are also
predicted by both in fp32 and in bf16 and compared bit for bit. `--full-hans` times all
30,000 HANS rows once with each (dense).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from srcore.data.loaders import eval_label_names, load_split
from srcore.evaluation import EvalSet, make_evaluate_fn, predict, split_metrics
from srcore.jobspec.spec import SourceSpec
from srcore.models import resolve_model_path
from srcore.pruning import prunable_weights
from srcore.pruning.mask_training import ScoreMasker
from srcore.training import EncodedSplit, configure_cpu_threads, encode_split
from srcore.training.batching import collate
from srcore.training.device import autocast, resolve_precision
from srcore.training.trainer import forward_logits

MNLI = ("contradiction", "entailment", "neutral")
DEV = SourceSpec(format="mnli_dev_tsv", path="sample:mnli/dev_matched.tsv")
HANS = SourceSpec(format="hans_tsv", path="sample:hans/heuristics_evaluation_set.txt.gz")
BATCH = 256


def baseline_predict(
    model: nn.Module, encoded: EncodedSplit, batch_size: int, precision: str
) -> np.ndarray:
    """The evaluation as it was: sort, collate every batch, plain forward under autocast."""
    order = np.argsort(-encoded.lengths, kind="stable")
    logits = np.empty((len(encoded), model.config.num_labels), dtype=np.float32)
    model.eval()
    with torch.inference_mode(), autocast(torch.device("cpu"), precision):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            logits[rows] = forward_logits(model, collate(encoded, rows).inputs).float().numpy()
    return logits


def baseline_evaluate(sets: list[EvalSet], precision: str) -> Callable[[nn.Module], dict]:
    def evaluate(model: nn.Module) -> dict:
        return {
            s.name: split_metrics(
                baseline_predict(model, s.encoded, BATCH, precision), s.encoded, s.metric, MNLI
            )
            for s in sets
        }

    return evaluate


def load_sets(tokenizer, rows: int | None) -> list[EvalSet]:
    dev = load_split(DEV, MNLI, "dev", max_examples=rows, seed=0)
    hans = load_split(HANS, eval_label_names("hans", MNLI), "hans", max_examples=rows, seed=0)
    return [
        EvalSet("dev", encode_split(dev, tokenizer, 128)),
        EvalSet("hans", encode_split(hans, tokenizer, 128), "hans"),
    ]


def load_models(path: str) -> dict[str, nn.Module]:
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    models = {}
    for name in ("dense", "masked 50%"):
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
        if name != "dense":
            ScoreMasker(model, prunable_weights(model, include_classifier=False), 0.5, init="soft")
        models[name] = model.eval()
    return models


def matrix_params(model: nn.Module) -> int:
    """The encoder's per-token matrices (an unparametrized model)."""
    params = dict(model.named_parameters())
    names = [n for n in prunable_weights(model, include_classifier=False) if ".layer." in n]
    return sum(params[n].numel() for n in names)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def exact_check(model: nn.Module, sets: list[EvalSet], rows: int) -> str:
    """Both evaluations on the first `rows` of each set, fp32 and bf16: equal bit for bit?"""
    parts = []
    for precision in ("fp32", "bf16"):
        for s in sets:
            small = _head(s, rows)
            ours = make_evaluate_fn(
                [small], MNLI, small.name, batch_size=BATCH, precision=precision
            )
            got = predict(model, small.encoded, BATCH, precision=precision)
            want = baseline_predict(model, small.encoded, BATCH, precision)
            same = np.array_equal(got, want)
            diff = float(np.abs(got - want).max())
            metric = ours(model)[small.name] == split_metrics(
                want, small.encoded, small.metric, MNLI
            )
            parts.append(
                f"{precision} {s.name}: logits identical {same} (max diff {diff:g}), "
                f"metrics identical {metric}"
            )
    return "; ".join(parts)


def _head(s: EvalSet, rows: int) -> EvalSet:
    encoded = s.encoded
    n = min(rows, len(encoded))
    end = int(encoded.offsets[n])
    cut = EncodedSplit(
        name=encoded.name,
        label_names=encoded.label_names,
        uids=encoded.uids[:n],
        input_ids=encoded.input_ids[:end],
        token_type_ids=None if encoded.token_type_ids is None else encoded.token_type_ids[:end],
        offsets=encoded.offsets[: n + 1],
        labels=encoded.labels[:n],
        pad_token_id=encoded.pad_token_id,
        meta={k: v[:n] for k, v in encoded.meta.items()},
    )
    return EvalSet(s.name, cut, s.metric, s.positive_label)


def full_hans(tokenizer, model: nn.Module, p: int, shapes, precision: str) -> None:
    """All 30,000 HANS rows, dense: ours once, then the baseline once (no turns: two minutes
    each on a CPU), against the lower of the bf16 ceilings measured before and after."""
    from train_throughput import matmul_ceiling

    full = load_sets(tokenizer, None)[1]
    ours = make_evaluate_fn([full], MNLI, "hans", batch_size=BATCH, precision=precision)
    base = baseline_evaluate([full], precision)
    work = 2 * p * int(full.encoded.lengths.sum())
    ceiling = matmul_ceiling(torch.bfloat16, torch.device("cpu"), shapes)
    seconds = {"ours": timed(lambda: ours(model)), "baseline": timed(lambda: base(model))}
    ceiling = min(ceiling, matmul_ceiling(torch.bfloat16, torch.device("cpu"), shapes))
    for side, took in seconds.items():
        print(
            f"full HANS {side:8s} ({len(full.encoded)} rows, {work / 1e12:.1f} TFLOP): "
            f"{took:.1f} s, {work / took / 1e9:.1f} GFLOP/s = {work / took / ceiling:.1%} of "
            f"the bf16 ceiling {ceiling / 1e9:.1f}"
        )
    print(f"ratio: {seconds['baseline'] / seconds['ours']:.3f}  (full HANS, dense)")


def main() -> int:
    from train_throughput import cpu_model, matmul_ceiling
    from transformers import AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=2000, help="rows per set (job: 2000)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    parser.add_argument("--exact-rows", type=int, default=300)
    parser.add_argument("--full-hans", action="store_true")
    args = parser.parse_args()

    threads = configure_cpu_threads(args.threads)
    path = resolve_model_path("all-MiniLM-L6-v2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    sets = load_sets(tokenizer, args.rows)
    models = load_models(path)
    p = matrix_params(models["dense"])
    tokens = sum(int(s.encoded.lengths.sum()) for s in sets)
    mean = tokens / sum(len(s.encoded) for s in sets)
    m = int(BATCH * mean)
    shapes = [(m, 384, 1536), (m, 1536, 384), (m, 384, 384)]
    used = resolve_precision(args.precision, torch.device("cpu"))
    print(
        f"{cpu_model()}, {threads} threads, torch {torch.__version__}, precision "
        f"{args.precision} → {used}, load avg {os.getloadavg()[0]:.2f}; sets "
        f"{', '.join(f'{s.name} {len(s.encoded)}' for s in sets)}, {tokens} real tokens "
        f"(mean {mean:.1f}); P = {p / 1e6:.2f} M"
    )
    ceilings = []
    for name, model in models.items():
        ours = make_evaluate_fn(sets, MNLI, "dev", batch_size=BATCH, precision=args.precision)
        base = baseline_evaluate(sets, args.precision)
        ceilings.append(matmul_ceiling(torch.bfloat16, torch.device("cpu"), shapes))
        assert ours(model)["dev"] == base(model)["dev"]  # warm both; the same metrics
        times: dict[str, list[float]] = {"baseline": [], "ours": []}
        for _ in range(args.rounds):
            for side in ("baseline", "ours", "ours", "baseline"):
                fn = base if side == "baseline" else ours
                times[side].append(timed(lambda fn=fn, model=model: fn(model)))
        ceilings.append(matmul_ceiling(torch.bfloat16, torch.device("cpu"), shapes))
        ceiling = min(ceilings[-2:])
        for side, runs in times.items():
            best = min(runs)
            rate = 2 * p * tokens / best
            print(
                f"{name:10s} {side:8s}: {best:6.2f} s per evaluation (runs "
                f"{', '.join(f'{t:.2f}' for t in runs)}), {rate / 1e9:6.1f} useful GFLOP/s = "
                f"{rate / ceiling:5.1%} of the bf16 ceiling {ceiling / 1e9:.1f}"
            )
        print(
            f"ratio: {min(times['baseline']) / min(times['ours']):.3f}  ({name}: baseline / "
            f"ours seconds per evaluation)"
        )
        print(
            f"exact ({name}, {args.exact_rows} rows per set): "
            f"{exact_check(model, sets, args.exact_rows)}"
        )
    if args.full_hans:
        full_hans(tokenizer, models["dense"], p, shapes, args.precision)
    print(f"load avg after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
