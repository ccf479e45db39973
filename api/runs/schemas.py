"""Response bodies of the runs table: one row per job, stage and sparsity, the seeds averaged."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from persistence.tables import JobStatus

# What `sort` accepts (a leading "-" sorts descending); ood.<set> sorts by one OOD set too.
SORT_KEYS = ("created_at", "job_name", "task", "loss", "method", "scenario", "structure",
             "stage", "sparsity", "id_metric", "ood_metric", "collapsed", "study_name",
             "n")  # fmt: skip


class RunRow(BaseModel):
    """One job × stage × sparsity: the selected points of its seeds, averaged."""

    job_id: uuid.UUID = Field(description="The job")
    job_name: str | None = Field(description="The job's name")
    status: JobStatus = Field(description="The job's status (a running job's rows grow)")
    created_at: datetime = Field(description="When the job was submitted")
    study_id: uuid.UUID | None = Field(description="The study the job belongs to, if any")
    study_name: str | None = Field(description="The study's name, if any")
    task: str = Field(description="The job's task (mnli, qqp, fever, custom)")
    loss: str = Field(
        description="The debiasing loss of this model: the job's debias.loss, or `none` for a "
        "dense model trained with plain cross-entropy (dense.loss none)"
    )
    method: str = Field(description="The job's pruning method")
    scenario: str = Field(description="The job's pruning scenario")
    structure: str = Field(
        description="The job's pruning.structure: unstructured, ffn_neurons or "
        "ffn_neurons+heads (jobs stored before it existed: unstructured)"
    )
    stage: Literal["dense", "search", "retrain"] = Field(
        description="dense: the dense model; search/retrain: a subnetwork"
    )
    sparsity: float = Field(description="Fraction of the prunable weights removed; 0: dense")
    seeds: list[int] = Field(description="Seeds whose selected point is averaged here")
    n: int = Field(description="Number of seeds averaged")
    id_set: str | None = Field(description="The in-distribution evaluation set (dev)")
    id_metric: float | None = Field(
        description="Mean over seeds of the ID set's headline metric (accuracy, else F1)"
    )
    ood_set: str | None = Field(description="The first OOD set by name (the headline one)")
    ood_metric: float | None = Field(description="Mean over seeds of that set's headline metric")
    ood: dict[str, float] = Field(
        description="Every OOD set's mean headline metric (accuracy, else F1), by set name"
    )
    collapsed: bool = Field(
        description="Some seed's model answered one class for almost all of some set: its "
        "numbers there are no robustness gain"
    )
    collapsed_sets: list[str] = Field(description="The sets where some seed collapsed")
    tags: list[str] = Field(description="The job's tags (PATCH /jobs/{id})")
    note: str | None = Field(description="The job's note (PATCH /jobs/{id})")


class RunTable(BaseModel):
    data: list[RunRow] = Field(description="The rows, filtered and sorted")
    count: int = Field(description="Rows after the filters")
    ood_sets: list[str] = Field(description="Every OOD set some row has (the CSV's ood.* columns)")
    truncated: bool = Field(
        description="True when only the newest jobs were read (see `max_jobs` in the README)"
    )
