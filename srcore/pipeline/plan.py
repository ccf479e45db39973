"""Which stages a job runs, derived once from its spec (torch-free).

    bias model ──► teacher (conf_reg: the dense CE model, or a file) ──► dense fine-tune
        └───────────────────────────────────────────────────────────────────► search ──► retrain

Every rule about "does this job need X" lives here; the stages read the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from srcore.jobspec.names import loss_needs
from srcore.jobspec.spec import JobSpec


@dataclass(frozen=True)
class StagePlan:
    method: str  # a key of srcore.pipeline.run.SEARCH_METHODS
    scenario: str
    search_loss: str  # the loss of the search training (mask scores, IMP survivors)
    retrain_loss: str | None  # scenario 2's retrain of the masked pre-trained model
    dense_loss: str | None  # the dense fine-tune's loss; None: no dense fine-tune
    start: Literal["dense", "pretrained"]  # the model the search starts from
    teacher: Literal["dense", "file"] | None  # where conf_reg's teacher comes from
    needs_bias: bool

    @classmethod
    def from_spec(cls, spec: JobSpec) -> StagePlan:
        p = spec.pruning
        retrain_loss = spec.retrain_loss if p.scenario == "pretrained_retrain" else None
        # Scenario 1, and scenario 2 with a mask-training mask (found on the fine-tuned model).
        from_dense = p.scenario == "finetuned" or (
            p.scenario == "pretrained_retrain" and p.method == "mask_training"
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
            search_loss=spec.debias.loss,
            retrain_loss=retrain_loss,
            dense_loss=dense_loss,
            start="dense" if from_dense else "pretrained",
            teacher=teacher,  # type: ignore[arg-type]
            needs_bias=any(loss_needs(loss).bias for loss in losses),
        )

    @property
    def needs_dense(self) -> bool:
        return self.dense_loss is not None

    @property
    def retrains(self) -> bool:
        return self.retrain_loss is not None

    def dense_curve_stage(self, loss: str) -> Literal["dense", "teacher"]:
        """The curve name of a dense fine-tune with `loss`: a conf_reg job whose dense model
        uses its own loss also fine-tunes a plain CE model, the teacher; keep the two apart."""
        return "dense" if loss == self.dense_loss else "teacher"
