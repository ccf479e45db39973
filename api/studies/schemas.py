"""Request and response bodies of the studies domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.studies.progress import StudyProgress
from persistence.settings import QueueName
from persistence.tables import JobStatus
from srcore.jobspec.study import StudySpec

StudyStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class StudyCreate(StudySpec):
    """A study (`srcore.jobspec.study.StudySpec`: a base job spec, axes, extra rows, dense
    references) plus the worker queue of its jobs."""

    queue: QueueName | None = Field(
        default=None, description="Worker queue of every child; default: the service's."
    )

    def study(self) -> StudySpec:
        return StudySpec.model_validate(self.model_dump(exclude={"queue"}))


class StudyChildPublic(BaseModel):
    job_id: uuid.UUID = Field(description="The child's job (an ordinary job: /jobs/{id})")
    key: str = Field(description="Stable within the study, e.g. `debias.loss=poe`")
    label: str = Field(description="The row label in the table")
    role: Literal["search", "reference"] = Field(
        description="search: a grid point; reference: a dense model per loss with its magnitude "
        "subnetworks"
    )
    setting: dict[str, Any] = Field(description="The spec paths this child sets on the base")
    status: JobStatus = Field(description="The child job's status")


class StudyPublic(BaseModel):
    id: uuid.UUID = Field(description="The study's id")
    name: str | None = Field(description="The study's name")
    status: StudyStatus = Field(
        description="From the children: queued (none started), running (some not finished), "
        "else failed if any failed, cancelled if any was cancelled, succeeded"
    )
    counts: dict[JobStatus, int] = Field(description="Children per status")
    jobs: int = Field(description="Number of child jobs")
    progress: StudyProgress | None = Field(
        default=None, description="Children done, the whole study's fraction, elapsed and ETA"
    )
    queue: str = Field(description="The worker queue of its jobs")
    created_at: datetime = Field(description="When it was submitted")


class TableRecord(BaseModel):
    """One (row, sparsity, metric) of the results table: mean ± sd over seeds with n."""

    row: str = Field(description="The row label (loss poe, dense CE, magnitude CE, …)")
    role: Literal["search", "reference", "magnitude"] = Field(
        description="search row, dense reference or its one-shot magnitude subnetwork"
    )
    setting: str = Field(description="The row's setting as JSON text")
    sparsity: float = Field(description="0 for a dense model")
    metric: str = Field(
        description="`set.metric`, e.g. `hans.non_entailed`, `mask.differ_fraction`"
    )
    mean: float = Field(description="Mean over seeds")
    sd: float = Field(description="Sample standard deviation over seeds (0 for one seed)")
    n: int = Field(description="Seeds averaged")
    collapsed: int = Field(description="Seeds whose model collapsed onto one class on this set")


class SeedRecord(BaseModel):
    """One seed of one (row, sparsity, metric): the value behind a mean and where it is from."""

    row: str = Field(description="The row label")
    role: Literal["search", "reference", "magnitude"] = Field(description="As in the table")
    child: str = Field(description="The child's key in the study")
    job: str | None = Field(description="The child job's id (/jobs/{id})")
    seed: int = Field(description="The training seed (same seed: same dense model, data order)")
    sparsity: float = Field(description="0 for a dense model")
    metric: str = Field(description="`set.metric`, as in the table")
    value: float = Field(description="The metric at the selected step")
    selected_step: int | None = Field(description="The step selected on ID dev")
    mask_sha256: str | None = Field(
        description="sha256 of the subnetwork's mask artifact (null for a dense model)"
    )
    collapsed: int = Field(description="1 when this seed's model collapsed onto one class here")


class PairedComparison(BaseModel):
    """`row_a − row_b` on one metric, paired by seed, with a 95% t interval over the seeds."""

    row_a: str = Field(description="The row whose value comes first")
    sparsity_a: float = Field(description="Its sparsity (0: dense)")
    row_b: str = Field(description="The row subtracted")
    sparsity_b: float = Field(description="Its sparsity (a dense row pairs with every sparsity)")
    metric: str = Field(description="`set.metric`")
    n: int = Field(description="Seeds both rows hold")
    mean_difference: float = Field(description="Mean of a − b over those seeds")
    sd: float = Field(description="Sample sd of the differences (0 for one seed)")
    low: float | None = Field(description="Lower end of the 95% t interval (null: one seed)")
    high: float | None = Field(description="Upper end of the 95% t interval (null: one seed)")
    seeds: list[int] = Field(description="The paired seeds")


class StudyDetail(StudyPublic):
    spec: dict[str, Any] = Field(description="The study with every default filled in")
    children: list[StudyChildPublic] = Field(description="Its jobs in table order")
    table: list[TableRecord] = Field(
        description="The results table from the children's selected points so far"
    )


class StudyList(BaseModel):
    data: list[StudyPublic] = Field(description="One page of studies, newest first")
    count: int = Field(description="All this key's studies, every page together")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class StudyTable(BaseModel):
    study_id: uuid.UUID = Field(description="The study")
    study: dict[str, Any] = Field(description="The study spec")
    records: list[TableRecord] = Field(description="One per row, sparsity and metric")
    seeds: list[SeedRecord] = Field(description="One per row, sparsity, seed and metric")
    interval: str = Field(description="How the comparisons' intervals are computed")
    comparisons: list[PairedComparison] = Field(
        description="Paired differences: `a` − `b` when both are given; else every row against "
        "dense CE, every debiased row against its loss's dense model and against the same "
        "setting with the CE loss"
    )
