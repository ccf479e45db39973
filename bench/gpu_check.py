"""The GPU path end to end: BERT-base-shaped training, mask search, exact resume, evaluation,
export, and the projected wall time of a full MNLI mask search.

    .venv/bin/python bench/gpu_check.py                 # on a machine with CUDA
    .venv/bin/python bench/gpu_check.py --allow-cpu     # no GPU: a tiny CPU smoke of the same code
    options: [--dense-steps 150] [--search-steps 300] [--batch-size 32] [--precision auto]

Nothing is downloaded: the model is `BertForSequenceClassification(BertConfig())` (BERT-base
shape, random weights, 3 labels); the training batches are synthetic MNLI-like pairs (random
token ids, lengths drawn from the bundled MNLI rows' lengths under the bundled MiniLM
tokenizer, which has BERT-base's uncased vocabulary, so mean ~40 tokens, max 128); the
evaluation sets are a synthetic 9,815-row "dev" (dev_matched's size) and the real bundled
30,000-row HANS set tokenised with that tokenizer.

Stages, each timed with the device synchronised:
1. dense fine-tune (`Trainer`, every weight, fused AdamW, `precision`: auto is bf16 from
   compute capability 8.0);
2. mask search at 50 % (`ScoreMasker` on the prunable matrices + classifier, scores only);
3. exact resume on the device: a short mask-training run and a short dense run, each stopped
   and resumed from its checkpoint, must end bit-identical to an uninterrupted run (with
   deterministic algorithms and the math attention kernel for this check only: flash and
   memory-efficient attention backward use atomics, which are not bit-reproducible);
4. evaluation (`make_evaluate_fn`: dev + HANS, longest-first batches of 256);
5. export (`export_checkpoint` + bit-packed `save_masks`), reloaded and checked against the
   masked model's predictions.
Prints examples/s per stage, peak GPU memory, and the projected wall time of the paper's
5-epoch MNLI mask search (392,702 pairs, batch 32: 61,360 steps, 10 evaluations of
dev_matched + dev_mismatched + HANS), and of the 3-epoch dense fine-tune before it.
Exit status: 0 when every check passed (or when skipped: no CUDA and no --allow-cpu), else 1.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

# cuBLAS needs this before its first handle for bit-reproducible GEMMs (the resume check).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np
import torch

MNLI_LABELS = ("contradiction", "entailment", "neutral")
MNLI_TRAIN = 392_702
MNLI_EVAL = 9_815 + 9_832 + 30_000  # dev_matched, dev_mismatched, HANS
EPOCHS_MASK, EPOCHS_DENSE, BATCH = 5, 3, 32


def synthetic_split(name: str, n: int, lengths_pool: np.ndarray, vocab: int, seed: int):
    """n MNLI-like encoded pairs: lengths resampled from real ones, random ids and labels."""
    from srcore.training import EncodedSplit

    rng = np.random.default_rng(seed)
    lengths = rng.choice(lengths_pool, size=n, replace=True).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = rng.integers(1000, vocab, size=int(offsets[-1]), dtype=np.int32)
    types = np.zeros(int(offsets[-1]), dtype=np.int8)
    for i in range(n):  # [CLS] a [SEP] b [SEP]: CLS=101, SEP=102 in BERT's uncased vocab
        s, e = offsets[i], offsets[i + 1]
        mid = s + max(1, (e - s) // 2)
        ids[s], ids[mid - 1], ids[e - 1] = 101, 102, 102
        types[mid:e] = 1
    return EncodedSplit(
        name=name,
        label_names=MNLI_LABELS,
        uids=[f"{name}{i}" for i in range(n)],
        input_ids=ids,
        token_type_ids=types,
        offsets=offsets,
        labels=rng.integers(0, 3, size=n).astype(np.int64),
        pad_token_id=0,
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def new_model(config, device: torch.device, seed: int = 0):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(config).to(device)


def mask_setup(model):
    from srcore.pruning import ConstantSparsity, MaskTrainingHooks, ScoreMasker, prunable_weights

    masker = ScoreMasker(model, prunable_weights(model, include_classifier=True), 0.5)
    return masker, MaskTrainingHooks(masker, ConstantSparsity(0.5))


def timed_run(trainer) -> tuple[float, object]:
    sync(trainer.device)
    start = time.perf_counter()
    result = trainer.run()
    sync(trainer.device)
    wall = time.perf_counter() - start
    return trainer.examples_seen / wall, result


def stop_after(n: int):
    """Callbacks that cancel the run after `n` steps."""
    from srcore.jobspec.callbacks import Callbacks

    class Stop(Callbacks):
        calls = 0

        def should_stop(self) -> bool:
            self.calls += 1
            return self.calls > n

    return Stop()


def resume_check(kind: str, config, train, device, precision: str, root: Path) -> bool:
    """Stopped at step 6 of 12 and resumed == uninterrupted, bit for bit (one stage kind)."""
    from srcore.jobspec.callbacks import Cancelled
    from srcore.training import Trainer, TrainerConfig, debias_loss_fn

    def trainer(ckpt: Path, callbacks=None, init_seed: int = 0):
        model = new_model(config, device, init_seed)
        params, hooks = None, None
        if kind == "mask":
            masker, hooks = mask_setup(model)
            params = masker.parameters()
        cfg = TrainerConfig(
            max_steps=12, batch_size=BATCH, lr=1e-3 if kind == "mask" else 5e-5, seed=3,
            checkpoint_dir=ckpt, checkpoint_every=4, precision=precision, stage=kind,
        )  # fmt: skip
        return Trainer(model, train, cfg, debias_loss_fn("none"), params=params,
                       callbacks=callbacks, hooks=hooks, device=device)  # fmt: skip

    def state(t) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in t.model.state_dict().items()}

    from torch.nn.attention import SDPBackend, sdpa_kernel

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            ref = trainer(root / f"{kind}-ref")
            ref.run()
            first = trainer(root / f"{kind}-run", callbacks=stop_after(6))
            try:
                first.run()
                print(f"  resume {kind}: the run did not stop")
                return False
            except Cancelled:
                pass
            resumed = trainer(root / f"{kind}-run", init_seed=5)
            resumed.run(resume=True)
    finally:
        torch.use_deterministic_algorithms(previous)
    a, b = state(ref), state(resumed)
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    worst = max((float((a[k].float() - b[k].float()).abs().max()) for k in a), default=0.0)
    print(f"  resume {kind} on {device}: stopped at 6 of 12, resumed: "
          f"{'bit-identical' if same else f'DIFFERS (max |diff| {worst:.3g})'}")  # fmt: skip
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--allow-cpu", action="store_true", help="no GPU: tiny CPU smoke")
    parser.add_argument("--dense-steps", type=int, default=150)
    parser.add_argument("--search-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False, torch "
              f"{torch.__version__}); skipping. Run it on a GPU machine, or pass --allow-cpu "
              "for a tiny CPU smoke of the same code.")  # fmt: skip
        return 0

    import transformers
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig

    from srcore.data.loaders import eval_label_names, load_split
    from srcore.evaluation import EvalSet, make_evaluate_fn, predict
    from srcore.export import export_checkpoint
    from srcore.jobspec.spec import SourceSpec
    from srcore.models import resolve_model_path
    from srcore.pruning import save_masks
    from srcore.training import (
        Trainer,
        TrainerConfig,
        configure_cpu_threads,
        debias_loss_fn,
        describe_precision,
        encode_split,
        resolve_precision,
    )

    transformers.logging.set_verbosity_error()
    device = torch.device("cuda" if cuda else "cpu")
    configure_cpu_threads()
    smoke = not cuda
    if smoke:
        config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=128, num_labels=3)  # fmt: skip
        args.dense_steps, args.search_steps = min(args.dense_steps, 6), min(args.search_steps, 6)
    else:
        config = BertConfig(num_labels=3)  # BERT-base: 12 × 768, 110 M parameters
    chosen = resolve_precision(args.precision, device)
    name = torch.cuda.get_device_name(device) if cuda else "CPU (smoke, tiny BERT)"
    print(f"gpu_check on {name}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"transformers {transformers.__version__}; precision "
          f"{describe_precision(args.precision, device)}")  # fmt: skip
    if cuda and chosen != "bf16":
        print("  note: this GPU has no native bf16 (compute capability < 8.0): running fp32")

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    mnli = load_split(SourceSpec(format="pair_json", path="sample:mnli/train.json"),
                      MNLI_LABELS, "train")  # fmt: skip
    pool = encode_split(mnli, tokenizer, 128).lengths
    b = args.batch_size
    train = synthetic_split("train", max(args.dense_steps, args.search_steps) * b, pool,
                            config.vocab_size, seed=0)  # fmt: skip
    dev = synthetic_split("dev", 512 if smoke else 9_815, pool, config.vocab_size, seed=1)
    hans_split = load_split(
        SourceSpec(format="hans_tsv", path="sample:hans/heuristics_evaluation_set.txt.gz"),
        eval_label_names("hans", MNLI_LABELS), "hans",
        max_examples=512 if smoke else None,
    )  # fmt: skip
    hans = encode_split(hans_split, tokenizer, 128)
    print(f"train rows {len(train)} (mean {train.lengths.mean():.1f} tokens), dev "
          f"{len(dev)}, HANS {len(hans)} (mean {hans.lengths.mean():.1f})")  # fmt: skip
    ok = True
    speed: dict[str, float] = {}
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)

    # warm-up (kernels, allocator, cuBLAS handles), not timed
    warm = new_model(config, device)
    Trainer(warm, train, TrainerConfig(max_steps=3, batch_size=b, precision=args.precision),
            debias_loss_fn("none"), device=device).run()  # fmt: skip
    del warm

    # 1. dense fine-tune
    dense = new_model(config, device)
    cfg = TrainerConfig(max_steps=args.dense_steps, batch_size=b, lr=5e-5,
                        precision=args.precision, stage="dense")  # fmt: skip
    t = Trainer(dense, train, cfg, debias_loss_fn("none"), device=device)
    speed["dense"], result = timed_run(t)
    print(f"1. dense fine-tune: {args.dense_steps} steps of {b}, {speed['dense']:.0f} ex/s "
          f"(precision {result.precision})")  # fmt: skip
    ok &= all(p.dtype == torch.float32 for p in dense.parameters())

    # 2. mask search at 50 %
    masker, hooks = mask_setup(dense)
    cfg = TrainerConfig(max_steps=args.search_steps, batch_size=b, lr=1e-3,
                        precision=args.precision, stage="search")  # fmt: skip
    t = Trainer(dense, train, cfg, debias_loss_fn("none"), params=masker.parameters(),
                hooks=hooks, device=device)  # fmt: skip
    speed["search"], _ = timed_run(t)
    masker.reset_thresholds(0.5)
    masks = masker.current_masks()
    kept = sum(int(m.sum()) for m in masks.values()) / sum(m.numel() for m in masks.values())
    print(f"2. mask search 50%: {args.search_steps} steps of {b}, {speed['search']:.0f} ex/s; "
          f"kept {kept:.3f} of masked weights; mask/dense step "
          f"{speed['dense'] / speed['search']:.2f}")  # fmt: skip
    ok &= abs(kept - 0.5) < 1e-3

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # 3. exact resume on the device
        print("3. exact resume:")
        ok &= resume_check("mask", config, train, device, args.precision, root)
        ok &= resume_check("dense", config, train, device, args.precision, root)

        # 4. evaluation
        evaluate = make_evaluate_fn(
            [EvalSet("dev", dev), EvalSet("hans", hans, metric="hans")],
            MNLI_LABELS, "dev", precision=args.precision,
        )  # fmt: skip
        sync(device)
        start = time.perf_counter()
        metrics = evaluate(dense)
        sync(device)
        wall = time.perf_counter() - start
        speed["eval"] = (len(dev) + len(hans)) / wall
        print(f"4. evaluation: dev {len(dev)} + HANS {len(hans)} rows in {wall:.2f} s, "
              f"{speed['eval']:.0f} ex/s (random model: HANS accuracy "
              f"{metrics['hans']['accuracy']:.3f})")  # fmt: skip

        # 5. export and reload
        start = time.perf_counter()
        out = export_checkpoint(dense, tokenizer, MNLI_LABELS, root / "export", masks)
        mask_path = save_masks(root / "mask-0.50.safetensors",
                               {k: v.cpu() for k, v in masks.items()})  # fmt: skip
        wall = time.perf_counter() - start
        reloaded = AutoModelForSequenceClassification.from_pretrained(out).to(device)
        rows = encode_split(
            load_split(
                SourceSpec(format="hans_tsv", path="sample:hans/heuristics_evaluation_set.txt.gz"),
                eval_label_names("hans", MNLI_LABELS), "check", max_examples=256,
            ),
            tokenizer, 128,
        )  # fmt: skip
        a = predict(dense, rows, precision=args.precision)
        c = predict(reloaded, rows, precision=args.precision)
        agree = float(np.mean(a.argmax(1) == c.argmax(1)))
        size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        print(f"5. export: {wall:.2f} s ({size:.0f} MB checkpoint, mask "
              f"{mask_path.stat().st_size / 1e6:.2f} MB); reloaded model agrees on {agree:.1%} "
              f"of 256 rows, max |logit diff| {np.abs(a - c).max():.2g}")  # fmt: skip
        ok &= agree == 1.0

    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
    steps = math.ceil(MNLI_TRAIN / BATCH) * EPOCHS_MASK
    search_s = MNLI_TRAIN * EPOCHS_MASK / speed["search"] + 10 * MNLI_EVAL / speed["eval"]
    dense_s = MNLI_TRAIN * EPOCHS_DENSE / speed["dense"] + 10 * MNLI_EVAL / speed["eval"]
    what = "BERT-base" if not smoke else "the tiny smoke model (meaningless for BERT-base)"
    print(f"projected, {what}: 5-epoch MNLI mask search ({steps:,} steps of {BATCH}, 10 "
          f"evaluations of {MNLI_EVAL:,} rows) {search_s / 3600:.2f} h; with the 3-epoch dense "
          f"fine-tune before it {(search_s + dense_s) / 3600:.2f} h")  # fmt: skip
    print("gpu_check: " + ("all checks passed" if ok else "SOME CHECKS FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
