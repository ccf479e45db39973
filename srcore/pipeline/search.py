"""What every search stage shares, and the scenario-2 retrain.

Each pruning method (`srcore.pipeline.methods`) yields `Found` units: one per reached target
sparsity, holding the mask, the model state to export, and the evaluation curve with its
selected point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from srcore.jobspec.results import CurveId
from srcore.pipeline.inputs import load_model
from srcore.pipeline.stages import StageContext, evaluate_fn, trainer_config, training_split
from srcore.pruning import FixedMaskHooks, apply_masks, prunable_weights
from srcore.training import Trainer, TrainerConfig, debias_loss_fn
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


def run_tag(sparsity: float) -> str:
    """The sparsity in a run's checkpoint folder name."""
    return f"{sparsity:.2f}"


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
        checkpoint_dir=ctx.work / f"retrain-{run_tag(found.sparsity)}",
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
