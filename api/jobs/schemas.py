"""Request and response bodies of the jobs domain."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from persistence.settings import QueueName
from persistence.tables import Job, JobEvent, JobStatus, Metric
from srcore.jobspec.spec import JobSpec


class JobCreate(JobSpec):
    """A job spec (`srcore.jobspec.spec.JobSpec`) plus where to run it."""

    queue: QueueName | None = Field(
        default=None, description="Worker queue; default: the service's (usually `gpu`)."
    )

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(exclude={"queue"}))


class Progress(BaseModel):
    step: int
    total: int | None
    fraction: float | None = Field(description="step / total of the current stage")


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    status: JobStatus
    queue: str
    stage: str | None
    progress: Progress
    examples_per_s: float | None
    eta_s: float | None = Field(description="Seconds left in the current stage (estimate)")
    error: str | None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls.model_validate(_job_fields(job))


class JobDetail(JobPublic):
    spec: dict[str, Any] = Field(description="The job spec with every default filled in")
    spec_hash: str

    @classmethod
    def of(cls, job: Job) -> JobDetail:
        return cls.model_validate(
            {**_job_fields(job), "spec": job.spec, "spec_hash": job.spec_hash}
        )


def _job_fields(job: Job) -> dict[str, Any]:
    total = job.progress_total
    fraction = None if not total else min(1.0, job.progress_step / total)
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "queue": job.queue,
        "stage": job.stage,
        "progress": {"step": job.progress_step, "total": total, "fraction": fraction},
        "examples_per_s": job.examples_per_s,
        "eta_s": job.eta_s,
        "error": job.error,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


class JobList(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="Jobs matching the filter, all pages together")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class JobEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    kind: str
    status: JobStatus | None
    message: str | None
    data: dict[str, Any] | None

    @classmethod
    def of(cls, event: JobEvent) -> JobEventPublic:
        return cls.model_validate(event)


class MetricPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    stage: str
    step: int
    seed: int | None
    sparsity: float | None
    selected: bool
    payload: dict[str, Any]

    @classmethod
    def of(cls, metric: Metric) -> MetricPoint:
        return cls.model_validate(metric)


class MetricCurve(BaseModel):
    """The evaluations of one (stage, seed, sparsity) and the point selected among them."""

    stage: str
    seed: int | None
    sparsity: float | None
    points: list[MetricPoint]
    selected: MetricPoint | None


class JobMetrics(BaseModel):
    job_id: uuid.UUID
    curves: list[MetricCurve]
    selected: list[MetricPoint] = Field(description="The selected point of every curve")

