"""One-shot magnitude pruning: the baseline, and the starting point of the other methods."""

from __future__ import annotations

from collections.abc import Iterator

from srcore.jobspec.results import CurveId, evaluation_payload
from srcore.jobspec.spec import TrainingSpec
from srcore.pipeline.methods.registry import ModelFactory, PruningMethod, register_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.search import Found
from srcore.pipeline.stages import StageContext, evaluate_fn
from srcore.pipeline.work import StageWork, WorkModel
from srcore.pruning import apply_masks, magnitude_masks, prunable_weights
from srcore.pruning.movement import mask_movement
from srcore.pruning.score_lr import WEIGHT_LR
from srcore.pruning.structured import structure_units, unit_magnitude_masks
from srcore.training import pick_device
from srcore.training.trainer import state_dict_copy


@register_method("magnitude", order=2, description="one-shot magnitude pruning")
class OneShotMagnitude(PruningMethod):
    default_lr = WEIGHT_LR  # trains nothing; a scenario-2 retrain has its own rate

    def search(self, ctx: StageContext, start: ModelFactory) -> Iterator[Found]:
        """Prune the starting weights by magnitude, evaluate, no training."""
        for target in ctx.plan.sparsities:
            model = start().to(pick_device())  # evaluated here, not by a Trainer
            if ctx.plan.structured:  # whole units (neurons, heads) by unit norm
                units = structure_units(model, ctx.plan.structure)
                found = unit_magnitude_masks(model, units, target)
            else:
                found = magnitude_masks(model, prunable_weights(model, False), target)
            masks = {n: m.cpu() for n, m in found.items()}
            apply_masks(model, masks)
            model.eval()
            metrics = evaluate_fn(ctx.spec, ctx.data)(model)
            entry = {
                "step": 0,
                "metrics": metrics,
                "train_loss": None,
                "info": {"sparsity": target},
            }
            curve = CurveId(stage="search", seed=ctx.seed, sparsity=target)
            ctx.callbacks.on_metrics(curve, 0, evaluation_payload(entry))
            history = [entry]
            movement = mask_movement(masks, masks).as_dict()  # the reference itself
            state = state_dict_copy(model)
            yield Found(target, masks, state, history, 0, metrics, "search", movement)

    def search_work(self, plan: StagePlan, training: TrainingSpec, work: WorkModel) -> StageWork:
        return work.evaluations("search", len(plan.sparsities))
