"""The GPU path end to end, in one command: the real pipeline, BERT-base-shaped timings, resume,
out-of-memory, and a worker per GPU; a JSON report.

    .venv/bin/python bench/gpu_check.py --report r.json              # with CUDA (one H100: ~5 min)
    .venv/bin/python bench/gpu_check.py --allow-cpu --report r.json  # no GPU: same checks, CPU,
                                                                     # tiny budgets

Checks (each a named entry of the report, `ok` true or false):
- `pipeline.*`: `run_search` on the bundled MiniLM (all-MiniLM-L6-v2, nothing downloaded) with
  the bundled MNLI/HANS samples, sharing one stage cache: mask training with the hard init and
  PoE, with the soft init and conf_reg, the gradual schedule 50 → 70 %, IMP in 2 rounds (10 %,
  20 %) with PoE, one-shot magnitude. Each unit's checkpoint is reloaded with plain transformers
  (`AutoModelForSequenceClassification`): every parameter fp32, each masked matrix with exactly
  k = round(s·n) pruned entries in its mask file and zeros at all of them in the weights, and
  metrics.json naming the device and the precision decision. `pipeline.stage_cache` checks that
  the five jobs fine-tuned one dense model between them.
- `bert_shape.*`: a BERT-base-shaped model (random weights; on the CPU a smaller shape, named
  in the report): dense and mask-training steps through the `Trainer` (wall time per step,
  ex/s), the same step on a fixed batch timed with CUDA events against wall time (how much of a
  trainer step is the GPU's own work: host-bound or not), peak memory, the τ reset of every
  masked matrix (srcore's batched selection against a `torch.kthvalue` per matrix, exact k
  checked), evaluation speed, and the projected time of a 5-epoch full-MNLI mask search.
- `resume.deterministic`: `training.deterministic` on, a dense and a mask-training run stopped
  at step 6 of 12 and resumed end bit-identical to an uninterrupted run.
  `resume.production`: deterministic off (the default): the resumed run's largest difference
  from an uninterrupted one, next to two uninterrupted runs' difference (the run-to-run noise
  of the device's non-deterministic kernels); ok when the first is within 10x the second.
- `oom.clear_error`: a training batch far beyond the GPU's memory fails with srcore's
  DeviceOutOfMemoryError naming the batch size and what to lower (GPU only; on the CPU it is
  listed as not run).
- `worker.device_recorded`: a real `srnet worker --gpus all` (one pinned process per GPU) on a
  scratch SQLite database and embedded broker runs one tiny job per GPU; each job's "running
  on" event must name a distinct visible GPU by UUID. On the CPU: `srnet worker --queues cpu`
  runs one cpu-queue job, recorded on the CPU with CUDA_VISIBLE_DEVICES="".
The environment (GPUs with UUIDs, compute capability, driver and CUDA, SDPA backends, TF32
flags, versions) is printed and reported. Exit status: 0 when every check passed, 1 otherwise;
without CUDA and without --allow-cpu: a message and 0 (nothing checked).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
MODEL = "all-MiniLM-L6-v2"
MNLI_LABELS = ("contradiction", "entailment", "neutral")
MNLI_TRAIN = 392_702
MNLI_EVAL = 9_815 + 9_832 + 30_000  # dev_matched, dev_mismatched, HANS
EPOCHS_MASK, BATCH = 5, 32


@dataclass(frozen=True)
class Budget:
    """How much each part runs: the GPU's, or the CPU's small one."""

    steps: int  # pipeline max_steps (dense and search)
    eval_every: int
    batch: int
    max_length: int
    train_examples: int
    eval_examples: int
    bert_steps: int  # trainer steps per BERT-shaped timing
    bert_batch: int
    event_steps: int  # fixed-batch steps timed with CUDA events
    eval_rows: int
    resume_steps: int  # stopped at half of it
    job_timeout_s: float

    @classmethod
    def gpu(cls) -> Budget:
        return cls(40, 20, 32, 128, 1280, 512, 30, BATCH, 20, 4096, 12, 600.0)

    @classmethod
    def cpu(cls) -> Budget:
        return cls(2, 2, 4, 16, 8, 8, 3, 8, 3, 64, 4, 420.0)


class Report:
    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []
        self.timings: dict[str, Any] = {}
        self.environment: dict[str, Any] = {}

    def check(self, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run one check; its dict must hold `ok`. An exception is a failed check (with the
        error), never a skipped one."""
        start = time.perf_counter()
        try:
            entry = {"name": name, **fn()}
        except Exception as exc:
            entry = {
                "name": name,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
        entry["seconds"] = round(time.perf_counter() - start, 2)
        self.checks.append(entry)
        shown = {k: v for k, v in entry.items() if k not in ("name", "ok", "traceback")}
        print(
            f"[{'ok' if entry['ok'] else 'FAIL'}] {name}: {json.dumps(shown, default=str)[:600]}",
            flush=True,
        )
        if not entry["ok"] and "traceback" in entry:
            print(entry["traceback"], flush=True)
        return entry

    @property
    def ok(self) -> bool:
        return all(c["ok"] for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        return {"checks": self.checks, "timings": self.timings, "environment": self.environment}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- environment -----------------------------------------------------------------------------


def environment(device: torch.device) -> dict[str, Any]:
    import transformers

    from srcore.training.device import describe_device

    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "transformers": transformers.__version__,
        "host": platform.node(),
        "device": str(device),
        "cpu": describe_device(torch.device("cpu")),
        "gpus": [],
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "sdpa_backends_enabled": {
            "flash": torch.backends.cuda.flash_sdp_enabled(),
            "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
            "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
            "math": torch.backends.cuda.math_sdp_enabled(),
        },
        "tf32_at_start": {
            "matmul": torch.backends.cuda.matmul.allow_tf32,
            "cudnn": torch.backends.cudnn.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        },
    }
    if device.type == "cuda":
        env["gpus"] = [
            describe_device(torch.device("cuda", i)) for i in range(torch.cuda.device_count())
        ]
    return env


def print_environment(env: dict[str, Any]) -> None:
    print(
        f"gpu_check: torch {env['torch']} (CUDA {env['torch_cuda']}, cuDNN {env['cudnn']}), "
        f"transformers {env['transformers']}, python {env['python']} on {env['host']}"
    )
    for gpu in env["gpus"]:
        print(
            f"  GPU {gpu['index']}: {gpu['name']} {gpu['uuid']}, {gpu['total_memory_gib']} GiB, "
            f"sm {gpu['compute_capability']}, driver {gpu['driver']} ({gpu['driver_source']}), "
            f"CUDA runtime {gpu['cuda_runtime']}"
        )
    cpu = env["cpu"]
    print(
        f"  CPU: {cpu['name']}, {cpu['threads']} threads, {cpu['usable_cores']} usable cores, "
        f"bf16 flags {cpu['bf16_flags']}"
    )
    print(
        f"  SDPA backends enabled: {env['sdpa_backends_enabled']}; TF32 at start: "
        f"{env['tf32_at_start']}; CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']!r}"
    )


# --- the real pipeline on MiniLM -------------------------------------------------------------


def pipeline_specs(budget: Budget) -> dict[str, dict[str, Any]]:
    def spec(name: str, loss: str, pruning: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": f"gpu_check {name}",
            "task": "mnli",
            "model": {"name_or_path": MODEL},
            "data": {
                "max_train_examples": budget.train_examples,
                "max_eval_examples": budget.eval_examples,
            },
            "debias": {"loss": loss},
            "pruning": pruning,
            "dense": {"max_steps": budget.steps, "learning_rate": 2e-4},
            "training": {
                "max_steps": budget.steps,
                "eval_every": budget.eval_every,
                "batch_size": budget.batch,
                "max_length": budget.max_length,
                "learning_rate": 0.01,
                "imp_round_epochs": 1.0,
            },
            "evaluation": {"batch_size": 256},
            # export.measure times each checkpoint on the CPU: not the GPU path this checks,
            # and a minute of the lent GPU's time per BERT-sized export.
            "export": {"measure": False},
        }

    return {
        "mask_training_hard_poe": spec(
            "hard poe", "poe", {"method": "mask_training", "init": "hard", "sparsities": [0.5]}
        ),
        "mask_training_soft_conf_reg": spec(
            "soft conf_reg",
            "conf_reg",
            {"method": "mask_training", "init": "soft", "sparsities": [0.5]},
        ),
        "gradual_50_to_70": spec(
            "gradual",
            "poe",
            {
                "method": "mask_training",
                "init": "soft",
                "schedule": "gradual",
                "initial_sparsity": 0.5,
                "sparsities": [0.7],
            },
        ),
        "imp_2_rounds_poe": spec(
            "imp", "poe", {"method": "imp", "imp_rate": 0.1, "sparsities": [0.1, 0.2]}
        ),
        "magnitude_one_shot": spec(
            "magnitude", "none", {"method": "magnitude", "sparsities": [0.5]}
        ),
    }


def check_export(unit: Any, labels: list[str]) -> dict[str, Any]:
    """Reload a unit's checkpoint with plain transformers: fp32, exact k per matrix, zeros
    where the mask prunes, the labels named."""
    from transformers import AutoModelForSequenceClassification

    from srcore.pruning import load_masks
    from srcore.pruning.selection import pruned_count

    model = AutoModelForSequenceClassification.from_pretrained(unit.checkpoint)
    params = dict(model.named_parameters())
    not_fp32 = sorted(n for n, p in params.items() if p.dtype != torch.float32)
    masks, meta = load_masks(unit.mask)
    wrong_k, not_zero, natural_zeros = [], [], 0
    for name, keep in masks.items():
        k = pruned_count(keep.numel(), unit.sparsity)
        pruned = int((~keep).sum())
        if pruned != k:
            wrong_k.append(f"{name}: {pruned} pruned, k={k}")
        weight = params[name].detach()
        if bool((weight[~keep] != 0).any()):
            not_zero.append(name)
        natural_zeros += int((weight[keep] == 0).sum())
    id2label = [model.config.id2label[i] for i in range(len(labels))]
    ok = not not_fp32 and not wrong_k and not not_zero and id2label == labels
    return {
        "ok": ok,
        "sparsity": unit.sparsity,
        "matrices": len(masks),
        "not_fp32": not_fp32,
        "wrong_k": wrong_k[:5],
        "nonzero_where_pruned": not_zero[:5],
        "zeros_among_kept": natural_zeros,
        "id2label": id2label,
        "mask_sparsity": meta["sparsity"]["sparsity_over_masked_weights"],
    }


def pipeline_checks(report: Report, budget: Budget, root: Path) -> None:
    from srcore.jobspec.spec import JobSpec
    from srcore.pipeline import run_search

    cache = root / "stage-cache"
    for name, raw in pipeline_specs(budget).items():

        def run(name: str = name, raw: dict[str, Any] = raw) -> dict[str, Any]:
            spec = JobSpec.model_validate(raw)
            start = time.perf_counter()
            result = run_search(spec, root / "jobs" / name, cache_dir=cache)
            wall = time.perf_counter() - start
            report.timings[f"pipeline.{name}_s"] = round(wall, 2)
            exports = [check_export(u, list(result.labels)) for u in result.units]
            metrics = json.loads((root / "jobs" / name / "metrics.json").read_text())
            device = metrics.get("device") or {}
            recorded = device.get("type") == ("cuda" if torch.cuda.is_available() else "cpu")
            if device.get("type") == "cuda":
                recorded = recorded and str(device.get("uuid", "")).startswith(("GPU-", "MIG-"))
            sparsities = [u.sparsity for u in result.units]
            ok = (
                sparsities == spec.pruning.sparsities
                and all(e["ok"] for e in exports)
                and recorded
                and "precision" in metrics
            )
            return {
                "ok": ok,
                "seconds_run": round(wall, 2),
                "sparsities": sparsities,
                "exports": exports,
                "device": {k: device.get(k) for k in ("type", "name", "uuid")},
                "precision": metrics.get("precision"),
                "movement": [u.movement for u in result.units],
            }

        report.check(f"pipeline.{name}", run)

    def cache_shared() -> dict[str, Any]:
        entries = sorted(p.name for p in cache.iterdir() if p.name.startswith("dense-"))
        return {"ok": len(entries) == 1, "dense_entries": entries}

    report.check("pipeline.stage_cache", cache_shared)


# --- BERT-base-shaped timings ----------------------------------------------------------------


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


def bert_config(device: torch.device):
    from transformers import BertConfig

    if device.type == "cuda":
        return BertConfig(num_labels=3), "BERT-base (12 x 768, 110 M parameters)"
    small = BertConfig(
        hidden_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=512,
        num_labels=3,
    )
    return small, "CPU stand-in for BERT-base: 2 x 128 (BERT-base is 12 x 768)"


def resume_config(device: torch.device):
    """The resume checks' model: BERT-base on a GPU (its kernels are what is checked), a tiny
    BERT on the CPU (the trainer's resume code is the same)."""
    from transformers import BertConfig

    if device.type == "cuda":
        return BertConfig(num_labels=3)
    return BertConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        num_labels=3,
    )


def new_model(config, device: torch.device, seed: int = 0):
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(config).to(device)


def mask_setup(model, init: str = "hard"):
    from srcore.pruning import ConstantSparsity, MaskTrainingHooks, ScoreMasker, prunable_weights

    masker = ScoreMasker(model, prunable_weights(model, include_classifier=True), 0.5, init=init)
    return masker, MaskTrainingHooks(masker, ConstantSparsity(0.5))


def peak_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 3)


def fixed_batch_step_times(model, params, device, batch: int, length: int, steps: int):
    """Per step of forward + backward + AdamW on one fixed batch: GPU time from CUDA events
    and wall time, both over `steps` steps enqueued back to back."""
    from srcore.training import autocast

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (batch, length), generator=g).to(device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 3, (batch,), generator=g).to(device)
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    model.train()

    def step() -> None:
        with autocast(device, "auto"):
            logits = model(input_ids=ids, attention_mask=mask).logits
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up
    sync(device)
    events = None
    if device.type == "cuda":
        events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        events[0].record()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if events is not None:
        events[1].record()
    sync(device)
    wall_ms = (time.perf_counter() - start) * 1000 / steps
    gpu_ms = events[0].elapsed_time(events[1]) / steps if events is not None else None
    return gpu_ms, wall_ms


def tau_reset_times(masker, device, sparsity: float) -> dict[str, Any]:
    """srcore's reset (one batched selection) against a torch.kthvalue per matrix."""
    from srcore.pruning.selection import pruned_count

    scores = masker.parameters()

    def old() -> None:
        for s in scores:
            flat = s.detach().reshape(-1)
            k = pruned_count(flat.numel(), sparsity)
            torch.kthvalue(flat, max(k, 1)).values.item()  # the old code's host sync

    def new() -> None:
        masker.reset_thresholds(sparsity)

    times = {}
    for name, fn in (("kthvalue_per_matrix", old), ("srcore", new)):
        fn()  # warm-up
        sync(device)
        start = time.perf_counter()
        for _ in range(3):
            fn()
        sync(device)
        times[name] = (time.perf_counter() - start) / 3
    masks = masker.current_masks()
    wrong = [n for n, m in masks.items() if int((~m).sum()) != pruned_count(m.numel(), sparsity)]
    return {
        "old_s": round(times["kthvalue_per_matrix"], 5),
        "new_s": round(times["srcore"], 5),
        "old_over_new": round(times["kthvalue_per_matrix"] / times["srcore"], 2),
        "matrices": len(masks),
        "wrong_k": wrong[:5],
    }


def bert_shape_checks(report: Report, budget: Budget, device: torch.device) -> None:
    from transformers import AutoTokenizer

    from srcore.data.loaders import load_split
    from srcore.evaluation import predict
    from srcore.jobspec.spec import SourceSpec
    from srcore.models import resolve_model_path
    from srcore.training import Trainer, TrainerConfig, debias_loss_fn, encode_split

    config, shape = bert_config(device)
    report.timings["bert_shape"] = shape
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(MODEL))
    mnli = load_split(
        SourceSpec(format="pair_json", path="sample:mnli/train.json"), MNLI_LABELS, "train"
    )
    pool = encode_split(mnli, tokenizer, 128).lengths
    b = budget.bert_batch
    train = synthetic_split("train", budget.bert_steps * b * 2, pool, config.vocab_size, 0)
    mean_len = round(float(pool.mean()))
    speed: dict[str, float] = {}

    def trainer_run(model, kind: str, params=None, hooks=None) -> dict[str, Any]:
        cfg = TrainerConfig(
            max_steps=budget.bert_steps,
            batch_size=b,
            stage=kind,
            lr=1e-3 if kind == "mask" else 5e-5,
        )
        trainer = Trainer(
            model, train, cfg, debias_loss_fn("none"), params=params, hooks=hooks, device=device
        )
        sync(device)
        start = time.perf_counter()
        result = trainer.run()
        sync(device)
        wall = time.perf_counter() - start
        speed[kind] = trainer.examples_seen / wall
        return {
            "trainer_ms_per_step": round(wall * 1000 / budget.bert_steps, 2),
            "examples_per_s": round(speed[kind], 1),
            "precision": result.precision,
        }

    def steps() -> dict[str, Any]:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        warm = new_model(config, device)
        Trainer(
            warm,
            train,
            TrainerConfig(max_steps=2, batch_size=b),
            debias_loss_fn("none"),
            device=device,
        ).run()
        del warm
        out: dict[str, Any] = {"shape": shape, "batch": b}
        dense = new_model(config, device)
        out["dense"] = trainer_run(dense, "dense")
        gpu_ms, wall_ms = fixed_batch_step_times(
            dense, dense.parameters(), device, b, mean_len, budget.event_steps
        )
        out["dense"].update(
            {
                "fixed_batch_gpu_ms": gpu_ms and round(gpu_ms, 2),
                "fixed_batch_wall_ms": round(wall_ms, 2),
            }
        )
        out["dense"]["peak_gib"] = peak_gib(device)
        fp32 = all(p.dtype == torch.float32 for p in dense.parameters())
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        masker, hooks = mask_setup(dense)
        out["mask"] = trainer_run(dense, "mask", params=masker.parameters(), hooks=hooks)
        gpu_ms, wall_ms = fixed_batch_step_times(
            dense, masker.parameters(), device, b, mean_len, budget.event_steps
        )
        out["mask"].update(
            {
                "fixed_batch_gpu_ms": gpu_ms and round(gpu_ms, 2),
                "fixed_batch_wall_ms": round(wall_ms, 2),
            }
        )
        out["mask"]["peak_gib"] = peak_gib(device)
        for kind in ("dense", "mask"):
            part = out[kind]
            if part["fixed_batch_gpu_ms"]:
                # > 1: the trainer step takes longer than the GPU's own work (host-bound part)
                part["trainer_over_gpu"] = round(
                    part["trainer_ms_per_step"] / part["fixed_batch_gpu_ms"], 2
                )
        out["mask_over_dense_step"] = round(speed["dense"] / speed["mask"], 2)
        out["tau_reset"] = tau_reset_times(masker, device, 0.7)
        dev = synthetic_split("dev", budget.eval_rows, pool, config.vocab_size, 1)
        predict(dense, dev, batch_size=256)  # warm-up
        sync(device)
        start = time.perf_counter()
        predict(dense, dev, batch_size=256)
        sync(device)
        speed["eval"] = len(dev) / (time.perf_counter() - start)
        out["eval_examples_per_s"] = round(speed["eval"], 1)
        mask_steps = math.ceil(MNLI_TRAIN / BATCH) * EPOCHS_MASK
        per_step = 1000.0 * b / speed["mask"]  # ms per mask step at the timed batch
        scale = BATCH / b
        search_s = mask_steps * per_step * scale / 1000 + 10 * MNLI_EVAL / speed["eval"]
        out["projected_5_epoch_mnli_mask_search_h"] = round(search_s / 3600, 2)
        out["projection_basis"] = (
            f"{mask_steps:,} mask steps of {BATCH} at the measured trainer rate"
            f"{'' if scale == 1 else f' (batch {b} scaled x{scale:g})'} + 10 evaluations of "
            f"{MNLI_EVAL:,} rows; {shape}"
        )
        report.timings["bert_shape_steps"] = out
        ok = (
            fp32
            and not out["tau_reset"]["wrong_k"]
            and all(math.isfinite(v) and v > 0 for v in speed.values())
        )
        return {"ok": ok, **out}

    report.check("bert_shape.steps_memory_tau_projection", steps)


# --- resume ----------------------------------------------------------------------------------


def stop_after(n: int):
    """Callbacks that cancel a run after `n` steps."""
    from srcore.jobspec.callbacks import Callbacks

    class Stop(Callbacks):
        calls = 0

        def should_stop(self) -> bool:
            self.calls += 1
            return self.calls > n

    return Stop()


def resume_run(
    kind: str,
    config,
    train,
    device,
    root: Path,
    deterministic: bool,
    steps: int,
    stop_at: int | None,
    tag: str,
) -> dict[str, torch.Tensor]:
    """A run of `steps` steps (stopped at `stop_at` and resumed from its checkpoint when
    given); answers the final state on the CPU."""
    from srcore.jobspec.callbacks import Cancelled
    from srcore.training import Trainer, TrainerConfig, debias_loss_fn

    ckpt = root / f"{kind}-{tag}-{'det' if deterministic else 'prod'}"

    def trainer(callbacks=None, init_seed: int = 0):
        model = new_model(config, device, init_seed)
        params, hooks = None, None
        if kind == "mask":
            masker, hooks = mask_setup(model)
            params = masker.parameters()
        cfg = TrainerConfig(
            max_steps=steps,
            batch_size=8,
            lr=1e-3 if kind == "mask" else 5e-5,
            seed=3,
            checkpoint_dir=ckpt,
            checkpoint_every=2,
            stage=kind,
            deterministic=deterministic,
        )
        return Trainer(
            model,
            train,
            cfg,
            debias_loss_fn("none"),
            params=params,
            callbacks=callbacks,
            hooks=hooks,
            device=device,
        )

    if stop_at is None:
        t = trainer()
        t.run()
    else:
        first = trainer(callbacks=stop_after(stop_at))
        with contextlib.suppress(Cancelled):
            first.run()
            raise AssertionError(f"the {kind} run did not stop at step {stop_at}")
        t = trainer(init_seed=5)  # other weights: everything must come from the checkpoint
        t.run(resume=True)
    return {k: v.detach().float().cpu() for k, v in t.model.state_dict().items()}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def resume_checks(report: Report, budget: Budget, device: torch.device, root: Path) -> None:
    config = resume_config(device)
    pool = np.array([24, 32, 40, 48, 64])
    n, half = budget.resume_steps, budget.resume_steps // 2
    train = synthetic_split("train", n * 8 * 2, pool, config.vocab_size, 2)

    def deterministic() -> dict[str, Any]:
        out = {}
        for kind in ("dense", "mask"):
            ref = resume_run(kind, config, train, device, root, True, n, None, "ref")
            resumed = resume_run(kind, config, train, device, root, True, n, half, "stop")
            out[kind] = {"max_abs_diff": max_diff(ref, resumed)}
        ok = all(v["max_abs_diff"] == 0.0 for v in out.values())
        return {"ok": ok, "steps": n, "stopped_at": half, **out}

    def production() -> dict[str, Any]:
        out = {}
        for kind in ("dense", "mask"):
            ref = resume_run(kind, config, train, device, root, False, n, None, "ref")
            again = resume_run(kind, config, train, device, root, False, n, None, "again")
            resumed = resume_run(kind, config, train, device, root, False, n, half, "stop")
            out[kind] = {
                "resumed_vs_uninterrupted": max_diff(ref, resumed),
                "two_uninterrupted_runs": max_diff(ref, again),
            }
        ok = all(
            v["resumed_vs_uninterrupted"] <= 10 * v["two_uninterrupted_runs"] + 1e-7
            for v in out.values()
        )
        return {"ok": ok, "steps": n, "stopped_at": half, **out}

    report.check("resume.deterministic", deterministic)
    report.check("resume.production", production)


# --- out of memory ---------------------------------------------------------------------------


def oom_check(report: Report, device: torch.device) -> None:
    def run() -> dict[str, Any]:
        if device.type != "cuda":
            return {"ok": True, "ran": False, "why": "no GPU: CPU memory is not probed"}
        from srcore.training import Trainer, TrainerConfig, debias_loss_fn
        from srcore.training.memory import DeviceOutOfMemoryError

        config, _ = bert_config(device)
        pool = np.array([512])
        train = synthetic_split("big", 1024, pool, config.vocab_size, 3)
        model = new_model(config, device)
        cfg = TrainerConfig(max_steps=1, batch_size=1024, stage="dense", precision="fp32")
        try:
            Trainer(model, train, cfg, debias_loss_fn("none"), device=device).run()
        except DeviceOutOfMemoryError as exc:
            message = str(exc)
            ok = "1024" in message and "batch" in message
            return {"ok": ok, "ran": True, "message": message[:800]}
        finally:
            del model
            torch.cuda.empty_cache()
        return {"ok": False, "ran": True, "why": "batch 1024 x 512 fitted: no OOM to check"}

    report.check("oom.clear_error", run)


# --- a worker per GPU ------------------------------------------------------------------------


def worker_job_spec() -> dict[str, Any]:
    from srcore.jobspec.spec import JobSpec

    raw = {
        "name": "gpu_check worker",
        "task": "mnli",
        "model": {"name_or_path": MODEL},
        "data": {"max_train_examples": 16, "max_eval_examples": 8},
        "pruning": {"method": "magnitude", "sparsities": [0.5]},
        "dense": {"max_steps": 2},
        "training": {"max_steps": 2, "eval_every": 2, "batch_size": 4, "max_length": 16},
        "export": {"measure": False},  # a CPU timing: not what this check is about
    }
    return JobSpec.model_validate(raw).model_dump(mode="json")


def worker_check(report: Report, budget: Budget, device: torch.device, root: Path) -> None:
    def run() -> dict[str, Any]:
        from persistence.broker import CeleryJobSender
        from persistence.db import Database, upgrade_database
        from persistence.keys import create_api_key
        from persistence.repositories import JobRepository
        from persistence.settings import Settings
        from persistence.tables import EventKind, JobStatus

        home = root / "service"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
        env.update(
            {
                "SRNET_HOME": str(home),
                "SRNET_ENVIRONMENT": "test",
                "SRNET_HEARTBEAT_INTERVAL_S": "1",
                "SRNET_PROGRESS_INTERVAL_S": "1",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false",
            }
        )
        settings = Settings(_env_file=None, SRNET_HOME=str(home))
        upgrade_database(settings.database_url)
        if device.type == "cuda":
            gpus = {g["uuid"] for g in report.environment["gpus"]}
            argv, queue, expected = ["--gpus", "all", "--queues", "gpu"], "gpu", len(gpus)
        else:
            gpus = set()
            argv, queue, expected = ["--queues", "cpu"], "cpu", 1
        log_path = root / "worker.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "srnet", "worker", *argv, "--hostname", "check@%h"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        database = Database.from_settings(settings)
        try:
            deadline = time.monotonic() + 240
            while log_path.read_text(errors="replace").count(" ready.") < expected:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("worker did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
            spec = worker_job_spec()
            job_ids = []
            with database.session() as session:
                owner = create_api_key(session, "gpu-check").owner
                for _ in range(expected):
                    job = JobRepository(session).create(
                        owner_id=owner.id,
                        spec=spec,
                        spec_hash=uuid.uuid4().hex,
                        queue=queue,
                        max_attempts=1,
                    )
                    job_ids.append(job.id)
                session.commit()
            sender = CeleryJobSender.from_settings(settings)
            try:
                for job_id in job_ids:
                    sender.send(job_id, queue)
            finally:
                sender.close()
            deadline = time.monotonic() + budget.job_timeout_s
            while True:
                with database.session() as session:
                    jobs = [JobRepository(session).get(j) for j in job_ids]
                    states = [j.status for j in jobs]
                if all(s in (JobStatus.succeeded, JobStatus.failed) for s in states):
                    break
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(
                        f"jobs not done: {states}\n" + log_path.read_text(errors="replace")[-3000:]
                    )
                time.sleep(1.0)
            placed = []
            with database.session() as session:
                for job_id in job_ids:
                    job = JobRepository(session).get(job_id)
                    events = JobRepository(session).events.list(job_id)
                    running = [
                        e
                        for e in events
                        if e.kind == EventKind.log and e.message.startswith("running on")
                    ]
                    data = running[0].data if running else {}
                    placed.append(
                        {
                            "job": str(job_id),
                            "status": str(job.status),
                            "error": job.error,
                            "device_type": (data.get("device") or {}).get("type"),
                            "uuid": (data.get("device") or {}).get("uuid"),
                            "cuda_visible_devices": data.get("cuda_visible_devices"),
                            "queue": data.get("queue"),
                        }
                    )
        finally:
            # A SIGTERM in the instant a job's process exits after its one task can leave
            # Celery's main process waiting forever (seen here with the embedded broker):
            # give the pool a moment to replace the process, and say if a kill was needed.
            time.sleep(3.0)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            stop_started = time.monotonic()
            try:
                process.wait(timeout=60)
                stopped_cleanly = True
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                stopped_cleanly = False
            stop_s = round(time.monotonic() - stop_started, 1)
            database.dispose()
        succeeded = all(p["status"] == str(JobStatus.succeeded) for p in placed)
        succeeded = succeeded and stopped_cleanly
        if device.type == "cuda":
            uuids = [p["uuid"] for p in placed]
            ok = succeeded and len(set(uuids)) == len(uuids) and set(uuids) <= gpus
            return {
                "ok": ok,
                "mode": "srnet worker --gpus all",
                "visible_gpus": sorted(gpus),
                "jobs": placed,
                "stopped_cleanly": stopped_cleanly,
                "stop_s": stop_s,
            }
        (one,) = placed
        ok = succeeded and one["device_type"] == "cpu" and one["cuda_visible_devices"] == ""
        return {
            "ok": ok,
            "mode": "srnet worker --queues cpu (no GPU)",
            "jobs": placed,
            "stopped_cleanly": stopped_cleanly,
            "stop_s": stop_s,
        }

    report.check("worker.device_recorded", run)


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--allow-cpu",
        action="store_true",
        help="no GPU: run the same checks on the CPU with small budgets",
    )
    parser.add_argument("--report", type=Path, help="write the report here as JSON")
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    if not cuda and not args.allow_cpu:
        print(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False, torch "
            f"{torch.__version__}); nothing checked. Run it on a GPU machine, or pass "
            "--allow-cpu for the same checks on the CPU."
        )
        return 0

    import transformers

    from srcore.training import configure_cpu_threads

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = torch.device("cuda", 0) if cuda else torch.device("cpu")
    configure_cpu_threads()
    budget = Budget.gpu() if cuda else Budget.cpu()
    report = Report()
    report.environment = environment(device)
    report.timings["budget"] = budget.__dict__
    print_environment(report.environment)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        root = Path(tmp)
        pipeline_checks(report, budget, root)
        bert_shape_checks(report, budget, device)
        resume_checks(report, budget, device, root)
        oom_check(report, device)
        worker_check(report, budget, device, root)
    report.timings["total_s"] = round(time.perf_counter() - started, 1)
    failed = [c["name"] for c in report.checks if not c["ok"]]
    print(
        f"gpu_check: {len(report.checks) - len(failed)}/{len(report.checks)} checks passed "
        f"in {report.timings['total_s']} s" + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report.as_json(), indent=2, default=str) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
