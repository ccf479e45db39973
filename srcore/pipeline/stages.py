"""Stages shared by several jobs and cached by content: bias probabilities, the dense
fine-tune (scenario 1's start and the conf_reg teacher), and the teacher's probabilities."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srcore.bias import BiasCache, BiasResult, bias_probabilities, load_probability_file
from srcore.bias.cache import cache_key_parts, training_digest
from srcore.evaluation import make_evaluate_fn, predict
from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.inputs import DEV_SET, JobData, load_model
from srcore.stage_cache import StageCache, canonical_hash
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, pick_device

BIAS_SEED = 0  # the bias model does not depend on the training seed: one per data set


def needs_bias(spec: JobSpec) -> bool:
    losses = {spec.debias.loss, spec.retrain_loss}
    if spec.dense.loss == "job":
        losses.add(spec.debias.loss)
    return bool(losses - {"none"})


def needs_teacher(spec: JobSpec) -> bool:
    return "conf_reg" in {spec.debias.loss, spec.retrain_loss}


def needs_dense(spec: JobSpec) -> bool:
    if spec.pruning.scenario == "finetuned":
        return True
    # Scenario 2 with a mask-training mask: the mask is found on the fine-tuned model.
    if spec.pruning.scenario == "pretrained_retrain" and spec.pruning.method == "mask_training":
        return True
    return needs_teacher(spec) and spec.debias.teacher.source == "dense"


def bias_stage(spec: JobSpec, data: JobData, cache_root: Path) -> BiasResult | None:
    if not needs_bias(spec):
        return None
    if spec.debias.bias.source == "file":
        assert spec.debias.bias.path is not None
        return load_probability_file(spec.debias.bias.path, data.train, data.labels)
    kind = data.task.bias_model
    cache = BiasCache(cache_root / "bias")
    parts = cache_key_parts(kind, data.train, data.labels, BIAS_SEED)
    result, _hit = cache.get_or_compute(
        parts, lambda: bias_probabilities(kind, data.train, data.labels, BIAS_SEED)
    )
    return result


def trainer_config(
    spec: JobSpec,
    *,
    stage: str,
    seed: int,
    epochs: float,
    lr: float,
    max_steps: int | None,
    checkpoint_dir: Path | None,
    select_last_fraction: float | None = None,
    detail: str | None = None,
    tags: dict[str, Any] | None = None,
) -> TrainerConfig:
    t = spec.training
    return TrainerConfig(
        epochs=epochs,
        max_steps=max_steps,
        batch_size=t.batch_size,
        lr=lr,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        grad_clip=t.grad_clip,
        eval_every=t.eval_every,
        select_last_fraction=select_last_fraction or t.select_last_fraction,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=t.eval_every,
        stage=stage,
        detail=detail,
        tags={"seed": seed, **(tags or {})},
    )


def evaluate_fn(spec: JobSpec, data: JobData):
    return make_evaluate_fn(
        data.eval_sets,
        data.labels,
        selection_set=DEV_SET,
        selection_key=data.selection_key,
        batch_size=spec.evaluation.batch_size,
    )


def with_loss_extras(data: JobData, bias: BiasResult | None, teacher: np.ndarray | None):
    extras: dict[str, np.ndarray] = {}
    if bias is not None:
        extras["bias_probs"] = bias.probs
    if teacher is not None:
        extras["teacher_probs"] = teacher
    return data.encoded_train.with_extras(**extras) if extras else data.encoded_train


@dataclass(frozen=True)
class DenseModel:
    path: Path  # save_pretrained directory
    result: dict[str, Any]  # history, selected step and metrics
    cached: bool


def dense_stage(
    spec: JobSpec,
    data: JobData,
    seed: int,
    loss: str,
    bias: BiasResult | None,
    cache: StageCache,
    callbacks: Callbacks,
    teacher: np.ndarray | None = None,
) -> DenseModel:
    """Fine-tune the whole model (CE, or the job's loss; conf_reg also needs `teacher`, the
    CE model's probabilities); cached by every input."""
    if loss == "conf_reg" and teacher is None:
        raise ValueError("a conf_reg fine-tune needs the teacher's probabilities")
    d = spec.dense
    inputs = {
        "model": spec.model.model_dump(),
        "train": training_digest(data.train),
        "dev": training_digest(data.dev),
        "eval_sets": sorted(s.name for s in data.eval_sets),
        "labels": list(data.labels),
        "dense": d.model_dump(exclude={"loss"}),
        "loss": loss,
        "bias": None if loss == "none" or bias is None else canonical_hash(bias.report),
        "bias_probs": None if loss == "none" or bias is None else _array_digest(bias.probs),
        "teacher_probs": None if loss != "conf_reg" else _array_digest(teacher),
        "training": spec.training.model_dump(
            include={
                "batch_size",
                "max_length",
                "weight_decay",
                "warmup_ratio",
                "grad_clip",
                "eval_every",
                "select_last_fraction",
            }
        ),
        "eval_batch": spec.evaluation.batch_size,
        "seed": seed,
    }
    key = cache.key("dense", inputs)
    work = cache.root / ".work" / key

    def build(tmp: Path) -> None:
        callbacks.on_stage("dense", f"seed {seed}, loss {loss}")
        model = load_model(data.model_path, data.labels, seed, spec.model.revision)
        config = trainer_config(
            spec,
            stage="dense",
            seed=seed,
            epochs=d.epochs,
            lr=d.learning_rate,
            max_steps=d.max_steps,
            checkpoint_dir=work,
            detail=f"seed {seed}",
            tags={"loss": loss},
        )
        config.stop_at_step = d.stop_at_step
        train = with_loss_extras(
            data, bias if loss != "none" else None, teacher if loss == "conf_reg" else None
        )
        trainer = Trainer(
            model,
            train,
            config,
            debias_loss_fn(loss),
            evaluate_fn=evaluate_fn(spec, data),
            callbacks=callbacks,
        )
        result = trainer.run(resume=True)
        model.load_state_dict(result.best_snapshot)
        model.save_pretrained(tmp, safe_serialization=True)
        summary = {
            "loss": loss,
            "seed": seed,
            "selected_step": result.best_step,
            "selected": result.best_metrics,
            "history": result.history,
            "total_steps": result.total_steps,
            "examples_per_s": result.examples_per_s,
        }
        (tmp / "result.json").write_text(json.dumps(summary, indent=1, default=_json_default))

    path, hit = cache.get_or_build(key, build)
    if hit:
        callbacks.on_stage("dense", f"seed {seed}: reused cached fine-tune {key}")
    return DenseModel(path, json.loads((path / "result.json").read_text()), hit)


def teacher_probabilities(
    spec: JobSpec, data: JobData, teacher: DenseModel, cache: StageCache
) -> np.ndarray:
    """Softmax of the dense CE model on the training set (conf_reg's teacher)."""
    key = cache.key(
        "teacher",
        {
            "dense": teacher.path.name,
            "train": training_digest(data.train),
            "max_length": spec.training.max_length,
        },
    )

    def build(tmp: Path) -> None:
        model = load_model(data.model_path, data.labels, 0, state_dir=teacher.path)
        model.to(pick_device())  # the whole training set: on the GPU where there is one
        logits = predict(model, data.encoded_train, spec.evaluation.batch_size)
        probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        np.save(tmp / "probs.npy", probs.astype(np.float32))

    path, _ = cache.get_or_build(key, build)
    return np.load(path / "probs.npy")


def teacher_from_file(spec: JobSpec, data: JobData) -> np.ndarray:
    assert spec.debias.teacher.path is not None
    # Uncovered examples get their gold label: conf_reg is plain CE there, instead of being
    # pulled towards "don't know" by a uniform teacher.
    teacher = load_probability_file(spec.debias.teacher.path, data.train, data.labels, fill="gold")
    return teacher.probs


def _array_digest(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value)}")
