"""The search stage of each method, and the scenario-2 retrain.

Each function returns `Found` units: one per reached target sparsity, holding the mask, the
model state to export, and the evaluation curve with its selected point.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from srcore.jobspec.results import CurveId, evaluation_payload
from srcore.pipeline.inputs import load_model
from srcore.pipeline.stages import StageContext, evaluate_fn, trainer_config, training_split
from srcore.pruning import (
    ConstantSparsity,
    CubicSparsity,
    FixedMaskHooks,
    ImpSchedule,
    IterativeMagnitudePruner,
    MaskTrainingHooks,
    ScoreMasker,
    apply_masks,
    base_weights_snapshot,
    magnitude_masks,
    prunable_weights,
)
from srcore.pruning.movement import mask_movement
from srcore.pruning.score_lr import search_learning_rate
from srcore.training import Trainer, TrainerConfig, debias_loss_fn, pick_device
from srcore.training.trainer import state_dict_copy


@dataclass
class Found:
    """One subnetwork: its mask, the model to export, and how it was selected."""

    sparsity: float
    masks: dict[str, Tensor]
    state: dict[str, Tensor]  # plain state_dict of the model to export (pruned entries zero)
    history: list[dict[str, Any]]
    selected_step: int
    selected: dict[str, Any]
    stage: str
    # how far the mask moved from magnitude pruning of the start model (MaskMovement.as_dict)
    movement: dict[str, Any] | None = None


SearchMethod = Callable[[StageContext, Callable[[], nn.Module]], Iterator[Found]]


def run_trainer(
    ctx: StageContext,
    model: nn.Module,
    config: TrainerConfig,
    loss: str,
    params: list[nn.Parameter] | None = None,
    hooks: Any = None,
):
    """Train with the job's loss extras; checkpoints every evaluation for exact resume."""
    trainer = Trainer(
        model,
        training_split(ctx, loss),
        config,
        debias_loss_fn(loss),
        params=params,
        evaluate_fn=evaluate_fn(ctx.spec, ctx.data),
        callbacks=ctx.callbacks,
        hooks=hooks,
    )
    if trainer.config.checkpoint_every is None:
        trainer.config.checkpoint_every = trainer.eval_every
    return trainer.run(resume=True)


def _tag(sparsity: float) -> str:
    return f"{sparsity:.2f}"


# --- mask training -------------------------------------------------------------------------


def mask_training(ctx: StageContext, start: Callable[[], nn.Module]) -> Iterator[Found]:
    """One run per target: scores on frozen weights, exact sparsity at every evaluation."""
    spec, p = ctx.spec, ctx.spec.pruning
    frozen = p.scenario == "pretrained_frozen"
    t = spec.training
    total = planned_steps(ctx, t.epochs, t.max_steps)
    lr = search_learning_rate(t.learning_rate, p.method)
    for target in p.sparsities:
        model = start()
        names = prunable_weights(model, include_classifier=p.mask_classifier)
        magnitude = {n: m.cpu() for n, m in magnitude_masks(model, names, target).items()}
        initial = p.schedule_start if p.schedule == "gradual" else target
        masker = ScoreMasker(model, names, initial, init=p.score_init, threshold=p.threshold)
        initial_masks = {n: m.cpu() for n, m in masker.current_masks().items()}
        config = trainer_config(
            spec,
            # a gradual ramp's evaluations belong to the curve of its target
            curve=CurveId(stage="search", seed=ctx.seed, sparsity=target),
            seed=ctx.seed,
            epochs=t.epochs,
            lr=lr,
            max_steps=t.max_steps,
            checkpoint_dir=ctx.work / f"mask-{_tag(target)}",
            # scenario 3 trains nothing but the mask: select over the whole run
            select_last_fraction=1.0 if frozen else None,
            detail=ctx.detail(target),
        )
        if p.schedule == "gradual":
            # The ramp ends where the selection window starts, so the selectable evaluations
            # are all at the final sparsity.
            ramp = max(1, math.floor((1.0 - config.select_last_fraction) * total))
            schedule: Any = CubicSparsity(initial, target, ramp)
        else:
            schedule = ConstantSparsity(target)
        hooks = MaskTrainingHooks(masker, schedule)
        result = run_trainer(ctx, model, config, ctx.plan.search_loss, masker.parameters(), hooks)
        masker.remove(leave_pruned=False)
        best: dict[str, Tensor] = result.best_snapshot
        apply_masks(model, best)
        yield Found(
            target,
            best,
            state_dict_copy(model),
            result.history,
            result.best_step,
            result.best_metrics,
            "search",
            mask_movement(best, magnitude, initial_masks).as_dict(),
        )


def planned_steps(ctx: StageContext, epochs: float, max_steps: int | None) -> int:
    """Optimizer steps of a run of `epochs` (or `max_steps`) on the job's training set."""
    if max_steps is not None:
        return max_steps
    batches = math.ceil(len(ctx.data.encoded_train) / ctx.spec.training.batch_size)
    return max(1, math.ceil(epochs * batches))


# --- IMP --------------------------------------------------------------------------------------


def imp(ctx: StageContext, start: Callable[[], nn.Module]) -> Iterator[Found]:
    """Prune `imp_rate` of the original weights per matrix each round, train the survivors
    with the job's loss (a new optimizer each round), optionally (`pruning.rewind`) rewind to
    pre-trained."""
    spec, p = ctx.spec, ctx.spec.pruning
    model = start()
    names = prunable_weights(model, include_classifier=False)
    start_weights = {
        n: w.detach().cpu().clone() for n, w in model.state_dict().items() if n in names
    }
    rewind_to = base_weights_snapshot(model) if p.rewind else None
    pruner = IterativeMagnitudePruner(
        model, names, ImpSchedule(p.sparsities, p.imp_rate), rewind_to=rewind_to
    )
    for rnd in pruner.schedule.rounds:
        round_dir = ctx.work / f"imp-round-{rnd.index:02d}"
        done = round_dir / "done.pt"
        if done.exists():  # resume: this round finished before a crash
            # CPU first: the round may have been written on another device (or GPU index).
            saved = torch.load(done, map_location="cpu", weights_only=False)
            model.load_state_dict(saved["model"])
            pruner.load_state_dict(saved["pruner"])
            found = saved.get("found")
            if found is not None:
                yield Found(**found)
            continue
        masks = pruner.prune(rnd)
        hooks = pruner.training_hooks()
        # the data order changes per round, the curve is the job seed's
        curve = CurveId(stage="search", seed=ctx.seed, sparsity=rnd.sparsity, imp_round=rnd.index)
        config = trainer_config(
            spec,
            curve=curve,
            seed=ctx.seed + rnd.index,
            epochs=spec.training.imp_round_epochs,
            lr=search_learning_rate(spec.training.learning_rate, p.method),
            max_steps=None,
            checkpoint_dir=round_dir / "ckpt",
            detail=f"{ctx.detail(rnd.sparsity)} (IMP round {rnd.index})",
        )
        result = run_trainer(ctx, model, config, ctx.plan.search_loss, hooks=hooks)
        hooks.close()
        found_unit = None
        if rnd.is_target:
            best_state = result.best_snapshot
            kept = {n: m.cpu().clone() for n, m in masks.items()}
            reference = magnitude_masks(start_weights, names, rnd.sparsity)
            found_unit = Found(
                rnd.sparsity,
                kept,
                best_state,
                result.history,
                result.best_step,
                result.best_metrics,
                "search",
                mask_movement(kept, reference).as_dict(),
            )
        torch.save(
            {
                "model": state_dict_copy(model),
                "pruner": pruner.state_dict(),
                "found": None if found_unit is None else found_unit.__dict__,
            },
            _tmp(done),
        )
        _tmp(done).replace(done)
        if found_unit is not None:
            yield found_unit


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_suffix(path.suffix + ".tmp")


# --- one-shot magnitude ------------------------------------------------------------------------


def one_shot_magnitude(ctx: StageContext, start: Callable[[], nn.Module]) -> Iterator[Found]:
    """The baseline: prune the starting weights by magnitude, evaluate, no training."""
    for target in ctx.spec.pruning.sparsities:
        model = start().to(pick_device())  # evaluated here, not by a Trainer
        names = prunable_weights(model, include_classifier=False)
        masks = {n: m.cpu() for n, m in magnitude_masks(model, names, target).items()}
        apply_masks(model, masks)
        model.eval()
        metrics = evaluate_fn(ctx.spec, ctx.data)(model)
        entry = {"step": 0, "metrics": metrics, "train_loss": None, "info": {"sparsity": target}}
        curve = CurveId(stage="search", seed=ctx.seed, sparsity=target)
        ctx.callbacks.on_metrics(curve, 0, evaluation_payload(entry))
        history = [entry]
        movement = mask_movement(masks, masks).as_dict()  # the reference itself
        yield Found(target, masks, state_dict_copy(model), history, 0, metrics, "search", movement)


# --- scenario 2: retrain the masked pre-trained model ---------------------------------------


def retrain(ctx: StageContext, found: Found) -> Found:
    """Fine-tune the pre-trained model under `found`'s mask with a fresh classifier."""
    spec = ctx.spec
    model = load_model(ctx.data.model_path, ctx.data.labels, ctx.seed, spec.model.revision)
    base_names = set(prunable_weights(model, include_classifier=False))
    masks = {n: m for n, m in found.masks.items() if n in base_names}  # new classifier: unmasked
    apply_masks(model, masks)
    hooks = FixedMaskHooks(model, masks, found.sparsity)
    config = trainer_config(
        spec,
        curve=CurveId(stage="retrain", seed=ctx.seed, sparsity=found.sparsity),
        seed=ctx.seed,
        epochs=spec.dense.epochs,
        lr=spec.dense.learning_rate,
        max_steps=spec.dense.max_steps,
        checkpoint_dir=ctx.work / f"retrain-{_tag(found.sparsity)}",
        detail=ctx.detail(found.sparsity),
    )
    assert ctx.plan.retrain_loss is not None
    result = run_trainer(ctx, model, config, ctx.plan.retrain_loss, hooks=hooks)
    hooks.close()
    model.load_state_dict(result.best_snapshot)
    apply_masks(model, masks)
    return Found(
        found.sparsity,
        masks,
        state_dict_copy(model),
        result.history,
        result.best_step,
        result.best_metrics,
        "retrain",
        found.movement,
    )
