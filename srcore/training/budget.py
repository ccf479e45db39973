"""The step and evaluation rule, re-exported from its torch-free home `srcore.jobspec.budget`
(the API sizes the web form's presets with it and must not import torch)."""

from srcore.jobspec.budget import (
    EVALUATIONS_PER_RUN,
    batches_per_epoch,
    evaluation_interval,
    planned_steps,
)

__all__ = ["EVALUATIONS_PER_RUN", "batches_per_epoch", "evaluation_interval", "planned_steps"]
