"""The context every stage gets, and the stages shared by several jobs and cached by content:
bias probabilities, the dense fine-tune (scenario 1's start and the conf_reg teacher), and the
teacher's probabilities."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srcore.bias import BiasCache, BiasFit, BiasResult, bias_probabilities, load_probability_file
from srcore.bias.cache import cache_key_parts, training_digest
from srcore.evaluation import make_evaluate_fn, predict
from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.layout import OutputLayout
from srcore.jobspec.names import loss_needs
from srcore.jobspec.results import CurveId, DenseFineTune, DensePoint, evaluated_sets
from srcore.jobspec.spec import DENSE_TRAINING_FIELDS, JobSpec
from srcore.pipeline.inputs import DEV_SET, JobData, load_model
from srcore.pipeline.plan import StagePlan
from srcore.stage_cache import StageCache, stage_inputs_hash
from srcore.training import EncodedSplit, Trainer, TrainerConfig, debias_loss_fn, pick_device

BIAS_SEED = 0  # the bias model does not depend on the training seed: one per data set


@dataclass(frozen=True)
class StageContext:
    """What every stage reads: the job, its plan and data, the stage cache, the callbacks,
    where outputs go; per seed the seed, and once computed the bias and teacher probabilities."""

    spec: JobSpec
    plan: StagePlan
    data: JobData
    cache: StageCache
    callbacks: Callbacks
    layout: OutputLayout
    seed: int = 0
    bias: BiasResult | None = None
    teacher: np.ndarray | None = None  # (N, C) teacher probabilities on the training set

    def with_(self, **changes: Any) -> StageContext:
        return dataclasses.replace(self, **changes)

    @property
    def work(self) -> Path:
        """This seed's folder for resumable trainer state."""
        return self.layout.seed_work_dir(self.seed)

    def detail(self, sparsity: float | None = None) -> str:
        text = f"seed {self.seed}"
        return text if sparsity is None else f"{text}, sparsity {sparsity:g}"


def bias_stage(ctx: StageContext) -> BiasResult | None:
    spec, data = ctx.spec, ctx.data
    if not ctx.plan.needs_bias:
        return None
    if spec.debias.bias.source == "file":
        assert spec.debias.bias.path is not None
        return load_probability_file(spec.debias.bias.path, data.train, data.labels)
    kind, b = data.task.bias_model, spec.debias.bias
    # The report scores the job's HANS sets with the bias model (a quality check, cheap).
    hans = {n: s for n, s in data.ood.items() if data.task.ood[n].metric == "hans"}
    settings = BiasFit(seed=BIAS_SEED, fit=b.fit, class_weight=b.class_weight)
    cache = BiasCache(ctx.cache.root / "bias")
    parts = cache_key_parts(kind, data.train, data.labels, settings, hans=hans)
    result, _hit = cache.get_or_compute(
        parts, lambda: bias_probabilities(kind, data.train, data.labels, settings, hans=hans)
    )
    return result


def trainer_config(
    spec: JobSpec,
    *,
    curve: CurveId,
    seed: int,
    epochs: float,
    lr: float,
    max_steps: int | None,
    checkpoint_dir: Path | None,
    select_last_fraction: float | None = None,
    detail: str | None = None,
) -> TrainerConfig:
    """`seed` orders the data (an IMP round's differs from its curve's seed)."""
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
        precision=t.precision,
        tf32=t.tf32,
        deterministic=t.deterministic,
        select_last_fraction=select_last_fraction or t.select_last_fraction,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=t.eval_every,
        stage=curve.stage,
        detail=detail,
        curve=curve,
    )


def evaluate_fn(spec: JobSpec, data: JobData):
    return make_evaluate_fn(
        data.eval_sets,
        data.labels,
        selection_set=DEV_SET,
        selection_key=data.selection_key,
        batch_size=spec.evaluation.batch_size,
        precision=spec.training.precision,
    )


def training_split(ctx: StageContext, loss: str) -> EncodedSplit:
    """The encoded training set with the probabilities `loss` reads."""
    needs, extras = loss_needs(loss), {}
    if needs.bias:
        if ctx.bias is None:
            raise ValueError(f"loss '{loss}' needs the bias model's probabilities")
        extras["bias_probs"] = ctx.bias.probs
    if needs.teacher:
        if ctx.teacher is None:
            raise ValueError(f"loss '{loss}' needs the teacher's probabilities")
        extras["teacher_probs"] = ctx.teacher
    train = ctx.data.encoded_train
    return train.with_extras(**extras) if extras else train


@dataclass(frozen=True)
class DenseModel:
    path: Path  # save_pretrained directory
    result: DenseFineTune  # history, selected step and metrics
    cached: bool

    def point(self) -> DensePoint:
        return self.result.point(cached=self.cached)


def set_metrics(evaluation: dict[str, Any]) -> dict[str, Any]:
    """Each evaluated set's metrics of an evaluation (without "selection")."""
    return evaluated_sets(evaluation)


def dense_stage(ctx: StageContext, loss: str) -> DenseModel:
    """Fine-tune the whole model (CE, or the job's loss; conf_reg also needs the teacher, the
    CE model's probabilities); cached by every input."""
    spec, data, seed, cache = ctx.spec, ctx.data, ctx.seed, ctx.cache
    needs = loss_needs(loss)
    bias = ctx.bias if needs.bias else None
    train = training_split(ctx, loss)  # refuses a loss whose inputs are missing
    d = spec.dense
    inputs = {
        "model": spec.model.model_dump(),
        "train": training_digest(data.train),
        "dev": training_digest(data.dev),
        "eval_sets": sorted(s.name for s in data.eval_sets),
        # what each OOD set holds: a cached fine-tune reports its evaluations on these sets, so
        # a job scoring another set under the same name (HANS's eval half, say) trains its own
        "ood": {
            name: [training_digest(split), data.task.ood[name].metric]
            for name, split in sorted(data.ood.items())
        },
        "labels": list(data.labels),
        "dense": d.model_dump(exclude={"loss"}),
        "loss": loss,
        "bias": None if bias is None else stage_inputs_hash(bias.report),
        "bias_probs": None if bias is None else _array_digest(bias.probs),
        "teacher_probs": _array_digest(ctx.teacher) if needs.teacher else None,
        "training": spec.training.model_dump(include=set(DENSE_TRAINING_FIELDS)),
        "eval_batch": spec.evaluation.batch_size,
        "seed": seed,
    }
    if not spec.training.tf32:  # full-fp32 GEMMs give other numbers; the default keeps old keys
        inputs["tf32"] = False
    key = cache.key("dense", inputs)
    work = cache.root / ".work" / key

    def build(tmp: Path) -> None:
        ctx.callbacks.on_stage("dense", f"seed {seed}, loss {loss}")
        model = load_model(data.model_path, data.labels, seed, spec.model.revision)
        curve = CurveId(stage=ctx.plan.dense_curve_stage(loss), seed=seed, loss=loss)
        config = trainer_config(
            spec,
            curve=curve,
            seed=seed,
            epochs=d.epochs,
            lr=d.learning_rate,
            max_steps=d.max_steps,
            checkpoint_dir=work,
            detail=f"seed {seed}",
        )
        config.stop_at_step = d.stop_at_step
        trainer = Trainer(
            model,
            train,
            config,
            debias_loss_fn(loss),
            evaluate_fn=evaluate_fn(spec, data),
            callbacks=ctx.callbacks,
        )
        # Checkpoint at every evaluation, as the search stages do: a worker that dies
        # mid-fine-tune resumes from its last evaluation, not from step 0.
        config.checkpoint_every = config.checkpoint_every or trainer.eval_every
        result = trainer.run(resume=True)
        model.load_state_dict(result.best_snapshot)
        model.save_pretrained(tmp, safe_serialization=True)
        DenseFineTune(
            loss=loss,
            seed=seed,
            selected_step=result.best_step,
            selected=result.best_metrics,
            history=result.history,
            total_steps=result.total_steps,
            examples_per_s=result.examples_per_s,
            precision=result.precision,
        ).write(tmp)

    path, hit = cache.get_or_build(key, build)
    if hit:
        ctx.callbacks.on_stage("dense", f"seed {seed}: reused cached fine-tune {key}")
    return DenseModel(path, DenseFineTune.read(path), hit)


def teacher_stage(ctx: StageContext) -> np.ndarray | None:
    """conf_reg's teacher probabilities: from a file, or the dense CE model's (the stage cache
    makes it the same entry as a CE dense fine-tune)."""
    if ctx.plan.teacher is None:
        return None
    if ctx.plan.teacher == "file":
        return teacher_from_file(ctx.spec, ctx.data)
    return teacher_probabilities(ctx, dense_stage(ctx, "none"))


def teacher_probabilities(ctx: StageContext, teacher: DenseModel) -> np.ndarray:
    """Softmax of the dense CE model on the training set (conf_reg's teacher)."""
    spec, data = ctx.spec, ctx.data
    key = ctx.cache.key(
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
        batch, precision = spec.evaluation.batch_size, spec.training.precision
        logits = predict(model, data.encoded_train, batch, precision=precision)
        probs = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        np.save(tmp / "probs.npy", probs.astype(np.float32))

    path, _ = ctx.cache.get_or_build(key, build)
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
