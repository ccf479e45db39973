"""IMP, iterative magnitude pruning: prune `imp_rate` of the original weights per matrix each
round, train the survivors with the job's loss (a new optimizer each round), optionally
(`pruning.rewind`) rewind the BERT weights to pre-trained; one run reaches every target."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from srcore.jobspec.results import CurveId
from srcore.jobspec.spec import TrainingSpec
from srcore.pipeline.methods.registry import ModelFactory, PruningMethod, register_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.search import Found, run_trainer
from srcore.pipeline.stages import StageContext, trainer_config
from srcore.pipeline.work import StageWork, WorkModel
from srcore.pruning import (
    ImpSchedule,
    IterativeMagnitudePruner,
    base_weights_snapshot,
    magnitude_masks,
    prunable_weights,
)
from srcore.pruning.magnitude import Masks
from srcore.pruning.movement import mask_movement
from srcore.pruning.score_lr import WEIGHT_LR
from srcore.pruning.structured import (
    mask_shapes,
    masks_from_norms,
    structure_units,
    unit_magnitude_masks,
    unit_norms,
    unit_weight_names,
)
from srcore.training.trainer import state_dict_copy


@register_method("imp", order=1, description="iterative magnitude pruning (IMP)")
class IterativeMagnitude(PruningMethod):
    default_lr = WEIGHT_LR

    def search(self, ctx: StageContext, start: ModelFactory) -> Iterator[Found]:
        spec, p = ctx.spec, ctx.plan.pruning
        model = start()
        select = None
        if ctx.plan.structured:  # whole units (neurons, heads) by norm, among the survivors
            units = structure_units(model, ctx.plan.structure)
            names = unit_weight_names(units)
            # the start model's unit norms (small), taken before any round trains
            norms = [n.cpu() for n in unit_norms(model, units)]
            shapes = mask_shapes(model, units)

            def reference_at(sparsity: float) -> Masks:
                return masks_from_norms(units, norms, shapes, sparsity)

            def select(
                m: nn.Module, _names: list[str], sparsity: float, previous: Masks | None = None
            ) -> Masks:
                return unit_magnitude_masks(m, units, sparsity, previous)
        else:
            names = prunable_weights(model, include_classifier=self.masks_classifier(p))
            start_weights = {
                n: w.detach().cpu().clone() for n, w in model.state_dict().items() if n in names
            }

            def reference_at(sparsity: float) -> Masks:
                return magnitude_masks(start_weights, names, sparsity)

        rewind_to = base_weights_snapshot(model) if p.rewind else None
        pruner = IterativeMagnitudePruner(
            model,
            names,
            ImpSchedule(ctx.plan.sparsities, p.imp_rate),
            rewind_to=rewind_to,
            select=select,
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
            curve = CurveId(
                stage="search", seed=ctx.seed, sparsity=rnd.sparsity, imp_round=rnd.index
            )
            config = trainer_config(
                spec,
                curve=curve,
                seed=ctx.seed + rnd.index,
                epochs=spec.training.imp_round_epochs,
                lr=self.learning_rate(spec.training.learning_rate),
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
                reference = reference_at(rnd.sparsity)
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

    def search_work(self, plan: StagePlan, training: TrainingSpec, work: WorkModel) -> StageWork:
        rounds = len(ImpSchedule(plan.sparsities, plan.pruning.imp_rate).rounds)
        round_steps = work.steps(training.imp_round_epochs, None)
        return work.training("search", round_steps, runs=rounds)


def _tmp(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_suffix(path.suffix + ".tmp")
