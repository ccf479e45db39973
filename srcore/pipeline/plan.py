"""Which stages a job runs, derived once from its spec (torch-free).

    bias model ──► teacher (conf_reg: the dense CE model, or a file) ──► dense fine-tune
        └───────────────────────────────────────────────────────────────────► search ──► retrain

Every rule about "does this job need X" lives here, and the plan is the only reader of the
spec's pruning section: the stages and the pruning methods (`srcore.pipeline.methods`) read the
plan, never `spec.pruning`, and no code outside this file tests the scenario or the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from srcore.jobspec.names import loss_needs, method_facts
from srcore.jobspec.spec import JobSpec, PruningSpec


@dataclass(frozen=True)
class StagePlan:
    method: str  # a key of srcore.pipeline.methods.METHODS
    scenario: str
    sparsities: tuple[float, ...]  # the targets, ascending
    pruning: PruningSpec  # the method's own settings (threshold, schedule, imp_rate, ...)
    search_loss: str  # the loss of the search training (mask scores, IMP survivors)
    retrain_loss: str | None  # scenario 2's retrain of the masked pre-trained model
    dense_loss: str | None  # the dense fine-tune's loss; None: no dense fine-tune
    start: Literal["dense", "pretrained"]  # the model the search starts from
    teacher: Literal["dense", "file"] | None  # where conf_reg's teacher comes from
    needs_bias: bool
    # unstructured (per weight), or ffn_neurons (whole FFN neurons, same count per layer)
    structure: str = "unstructured"

    @classmethod
    def from_spec(cls, spec: JobSpec) -> StagePlan:
        p = spec.pruning
        retrain_loss = spec.retrain_loss if p.scenario == "pretrained_retrain" else None
        # Scenario 1, and scenario 2 with a mask-training mask (found on the fine-tuned model).
        from_dense = p.scenario == "finetuned" or (
            p.scenario == "pretrained_retrain"
            and method_facts(p.method).retrain_mask_from == "dense"
        )
        job_losses = [spec.debias.loss, spec.retrain_loss]
        needs_teacher = any(loss_needs(loss).teacher for loss in job_losses)
        teacher = spec.debias.teacher.source if needs_teacher else None
        assert teacher != "none"  # JobSpec refuses a teacher-less conf_reg
        dense_loss = None
        if from_dense or teacher == "dense":
            dense_loss = spec.debias.loss if spec.dense.loss == "job" else "none"
        losses = [*job_losses, dense_loss] if dense_loss else job_losses
        return cls(
            method=p.method,
            scenario=p.scenario,
            sparsities=tuple(p.sparsities),
            pruning=p,
            search_loss=spec.debias.loss,
            retrain_loss=retrain_loss,
            dense_loss=dense_loss,
            start="dense" if from_dense else "pretrained",
            teacher=teacher,  # type: ignore[arg-type]
            needs_bias=any(loss_needs(loss).bias for loss in losses),
            structure=p.structure,
        )

    @property
    def needs_dense(self) -> bool:
        return self.dense_loss is not None

    @property
    def retrains(self) -> bool:
        return self.retrain_loss is not None

    @property
    def trains_weights(self) -> bool:
        """False in scenario 3: mask training on the pre-trained model with a random, frozen
        classifier; nothing but the mask is learnt."""
        return self.scenario != "pretrained_frozen"

    @property
    def select_last_fraction(self) -> float | None:
        """The search's selection window when it differs from the spec's: a run that trains
        no weight is selected over all of it."""
        return None if self.trains_weights else 1.0

    @property
    def exports_head(self) -> bool:
        """Whether the classifier's weights are saved with each mask: a random classifier is
        part of the subnetwork, without it the mask cannot be reproduced."""
        return not self.trains_weights

    @property
    def structured(self) -> bool:
        """Units are whole FFN neurons: the masks cover the FFN matrices only, and the
        exported checkpoint is physically smaller."""
        return self.structure != "unstructured"

    def dense_curve_stage(self, loss: str) -> Literal["dense", "teacher"]:
        """The curve name of a dense fine-tune with `loss`: a conf_reg job whose dense model
        uses its own loss also fine-tunes a plain CE model, the teacher; keep the two apart."""
        return "dense" if loss == self.dense_loss else "teacher"
