"""Subnetwork search: which matrices are pruned, magnitude masks, mask training (scores and a
straight-through gradient), IMP, sparsity schedules, and bit-packed mask files."""

from srcore.pruning.hooks import FixedMaskHooks, MaskTrainingHooks
from srcore.pruning.imp import (
    ImpRound,
    ImpSchedule,
    IterativeMagnitudePruner,
    base_weights_snapshot,
    rewind_weights,
)
from srcore.pruning.magnitude import apply_masks, magnitude_masks
from srcore.pruning.mask_file import (
    load_mask_weights,
    load_masks,
    restore_subnetwork,
    save_masks,
)
from srcore.pruning.mask_training import ScoreMask, ScoreMasker, StraightThroughMask
from srcore.pruning.report import model_parameter_count, sparsity_report
from srcore.pruning.schedules import (
    ConstantSparsity,
    CubicSparsity,
    SparsitySchedule,
    at_sparsity,
    cubic_sparsity,
)
from srcore.pruning.selection import pruned_count
from srcore.pruning.targets import (
    base_parameter_names,
    head_modules,
    head_state_dict,
    prunable_weights,
)

__all__ = [
    "ConstantSparsity",
    "CubicSparsity",
    "FixedMaskHooks",
    "ImpRound",
    "ImpSchedule",
    "IterativeMagnitudePruner",
    "MaskTrainingHooks",
    "ScoreMask",
    "ScoreMasker",
    "SparsitySchedule",
    "StraightThroughMask",
    "apply_masks",
    "at_sparsity",
    "base_parameter_names",
    "base_weights_snapshot",
    "cubic_sparsity",
    "head_modules",
    "head_state_dict",
    "load_mask_weights",
    "load_masks",
    "magnitude_masks",
    "model_parameter_count",
    "prunable_weights",
    "pruned_count",
    "restore_subnetwork",
    "rewind_weights",
    "save_masks",
    "sparsity_report",
]
