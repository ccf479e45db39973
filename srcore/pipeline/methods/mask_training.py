"""Mask training: real-valued scores on frozen weights learn the mask (straight-through),
one run per target sparsity, exact sparsity at every evaluation; optionally a cubic ramp."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from torch import Tensor

from srcore.jobspec.results import CurveId
from srcore.jobspec.spec import PruningSpec, TrainingSpec
from srcore.pipeline.methods.registry import ModelFactory, PruningMethod, register_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.search import Found, run_tag, run_trainer
from srcore.pipeline.stages import StageContext, trainer_config
from srcore.pipeline.work import StageWork, WorkModel
from srcore.pruning import (
    ConstantSparsity,
    CubicSparsity,
    MaskTrainingHooks,
    ScoreMasker,
    apply_masks,
    magnitude_masks,
    prunable_weights,
)
from srcore.pruning.movement import mask_movement
from srcore.pruning.score_lr import PAPER_SCORE_LR
from srcore.pruning.structured import UnitScoreMasker, structure_units, unit_magnitude_masks
from srcore.training.budget import batches_per_epoch, planned_steps
from srcore.training.trainer import state_dict_copy


@register_method(
    "mask_training",
    order=0,
    retrain_mask_from="dense",  # scenario 2: the mask is found on the fine-tuned model
    description="mask training (learned scores, straight-through estimator)",
)
class MaskTraining(PruningMethod):
    default_lr = PAPER_SCORE_LR

    def masks_classifier(self, pruning: PruningSpec) -> bool:
        return pruning.mask_classifier

    def search(self, ctx: StageContext, start: ModelFactory) -> Iterator[Found]:
        plan, p, t = ctx.plan, ctx.plan.pruning, ctx.spec.training
        batches = batches_per_epoch(len(ctx.data.encoded_train), t.batch_size)
        total = planned_steps(t.epochs, batches, t.max_steps)
        for target in plan.sparsities:
            model = start()
            initial = p.schedule_start if p.schedule == "gradual" else target
            masker: ScoreMasker
            if plan.structured:  # one score per unit (neuron, head), exact count per layer
                units = structure_units(model, plan.structure)
                reference = unit_magnitude_masks(model, units, target)
                masker = UnitScoreMasker(
                    model, initial, structure=plan.structure, init=p.score_init,
                    threshold=p.threshold,
                )  # fmt: skip
            else:
                names = prunable_weights(model, include_classifier=self.masks_classifier(p))
                reference = magnitude_masks(model, names, target)
                masker = ScoreMasker(
                    model, names, initial, init=p.score_init, threshold=p.threshold
                )
            magnitude = {n: m.cpu() for n, m in reference.items()}
            initial_masks = {n: m.cpu() for n, m in masker.current_masks().items()}
            config = trainer_config(
                ctx.spec,
                # a gradual ramp's evaluations belong to the curve of its target
                curve=CurveId(stage="search", seed=ctx.seed, sparsity=target),
                seed=ctx.seed,
                epochs=t.epochs,
                lr=self.learning_rate(t.learning_rate),
                max_steps=t.max_steps,
                checkpoint_dir=ctx.work / f"mask-{run_tag(target)}",
                select_last_fraction=plan.select_last_fraction,
                detail=ctx.detail(target),
            )
            if p.schedule == "gradual":
                # The ramp ends where the selection window starts, so the selectable
                # evaluations are all at the final sparsity.
                ramp = max(1, math.floor((1.0 - config.select_last_fraction) * total))
                schedule: Any = CubicSparsity(initial, target, ramp)
            else:
                schedule = ConstantSparsity(target)
            hooks = MaskTrainingHooks(masker, schedule)
            result = run_trainer(ctx, model, config, plan.search_loss, masker.parameters(), hooks)
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

    def search_work(self, plan: StagePlan, training: TrainingSpec, work: WorkModel) -> StageWork:
        steps = work.steps(training.epochs, training.max_steps)
        return work.training("search", steps, runs=len(plan.sparsities))
