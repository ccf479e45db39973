"""Request and response bodies of the jobs domain."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    computed_field,
    field_validator,
    model_validator,
)

from persistence.settings import QueueName
from persistence.tables import Job, JobEvent, JobStatus, Metric
from srcore.jobspec.results import Evaluation
from srcore.jobspec.spec import JobSpec


class JobCreate(JobSpec):
    """A job spec (`srcore.jobspec.spec.JobSpec`) plus where to run it."""

    queue: QueueName | None = Field(
        default=None, description="Worker queue. Not set: the service's default, usually gpu."
    )

    def spec(self) -> JobSpec:
        return JobSpec.model_validate(self.model_dump(exclude={"queue"}))


class Progress(BaseModel):
    step: int = Field(description="Steps done in the current stage's run")
    total: int | None = Field(description="Steps of the current stage's run; null: not known yet")
    fraction: float | None = Field(description="step / total of the current stage")
    phase: Literal["train", "evaluate"] | None = Field(
        default=None, description="What the running stage does now: train, or evaluate"
    )
    job_fraction: float | None = Field(
        default=None,
        description="The whole job, 0 to 1, across its stages weighed by their expected work "
        "(1 once it succeeded); null: not known yet (the data is still being read)",
    )


class JobPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The job's id")
    name: str | None = Field(description="The spec's name")
    status: JobStatus = Field(
        description="queued, running, cancelling, succeeded, failed or cancelled"
    )
    queue: str = Field(description="The worker queue it was sent to (gpu or cpu)")
    stage: str | None = Field(
        description="The pipeline stage running now or last (bias, teacher, dense, search, "
        "retrain, export)"
    )
    progress: Progress = Field(description="Where the current stage and the whole job are")
    examples_per_s: float | None = Field(
        description="Training or evaluation speed of the current stage"
    )
    eta_s: float | None = Field(description="Seconds left in the current stage (estimate)")
    job_eta_s: float | None = Field(
        default=None, description="Seconds left for the whole job (estimate from measured speed)"
    )
    elapsed_s: float | None = Field(
        default=None,
        description="Seconds since the job started running, until it finished (or now)",
    )
    error: str | None = Field(description="Why the job failed (a failed job always has one)")
    attempt: int = Field(
        description="Claims by a worker so far (a retry after a dead worker adds one)"
    )
    max_attempts: int = Field(description="Claims allowed before the job fails")
    cancel_requested: bool = Field(
        description="A cancel was asked for; a running job stops between two steps"
    )
    study_id: uuid.UUID | None = Field(
        default=None, description="The study this job is a child of; null for a plain job"
    )
    study_key: str | None = Field(
        default=None, description="The child's setting in its study (e.g. `debias.loss=poe`)"
    )
    tags: list[str] = Field(default_factory=list, description="The lab's own tags (PATCH)")
    note: str | None = Field(default=None, description="The lab's own free-text note (PATCH)")
    created_at: datetime = Field(description="When it was submitted")
    updated_at: datetime = Field(description="Its last change")
    started_at: datetime | None = Field(description="When a worker first started it")
    finished_at: datetime | None = Field(
        description="When it reached succeeded, failed or cancelled"
    )

    @classmethod
    def of(cls, job: Job) -> JobPublic:
        return cls.model_validate(_job_fields(job))


class QueuePlace(BaseModel):
    """Where a queued job stands (persistence.dispatch: owners take turns, per-owner limits)."""

    model_config = ConfigDict(from_attributes=True)

    position: int = Field(
        ge=1,
        description="1: the next job of its queue to start; counts the jobs handed to the "
        "workers first, then the waiting ones in the order owners take turns (assuming no job "
        "ends meanwhile)",
    )
    reason: str = Field(
        description="Why it has not started, e.g. `3 of your jobs are running; limit 3`"
    )


class JobDetail(JobPublic):
    spec: dict[str, Any] = Field(description="The job spec with every default filled in")
    spec_hash: str = Field(
        description="The spec's identity (sha256 of its canonical JSON), written into its masks "
        "and reports"
    )
    queue_place: QueuePlace | None = Field(
        default=None,
        description="A queued job's place in its queue and why it waits (GET /jobs/{id}); "
        "null once it runs or finished",
    )

    @classmethod
    def of(cls, job: Job, place: Any = None) -> JobDetail:
        """`place`: a persistence.dispatch.QueuePlace, or None."""
        fields = {**_job_fields(job), "spec": job.spec, "spec_hash": job.spec_hash}
        return cls.model_validate({**fields, "queue_place": place})


def _job_fields(job: Job) -> dict[str, Any]:
    total = job.progress_total
    fraction = None if not total else min(1.0, job.progress_step / total)
    return {
        "id": job.id,
        "name": job.name,
        "status": job.status,
        "queue": job.queue,
        "stage": job.stage,
        "progress": {
            "step": job.progress_step,
            "total": total,
            "fraction": fraction,
            "phase": job.phase,
            "job_fraction": job.job_fraction,
        },
        "examples_per_s": job.examples_per_s,
        "eta_s": job.eta_s,
        "job_eta_s": job.job_eta_s,
        "elapsed_s": _elapsed_s(job),
        "error": job.error,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "cancel_requested": job.cancel_requested,
        "study_id": job.study_id,
        "study_key": job.study_key,
        "tags": list(job.tags or []),
        "note": job.note,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _elapsed_s(job: Job) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at or datetime.now(UTC)
    return max(0.0, (end - job.started_at).total_seconds())


MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_NOTE_LENGTH = 4000
TAG_PATTERN = r"^[\w.:+/-]+$"  # letters, digits, _ . : + / - (no spaces: one word per tag)


def _tag_word(tag: str) -> str:
    if not re.fullmatch(TAG_PATTERN, tag):
        raise ValueError(f"a tag is one word of letters, digits and _ . : + / - (not {tag[:60]!r})")
    return tag


Tag = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TAG_LENGTH, json_schema_extra={"pattern": TAG_PATTERN}),
    AfterValidator(_tag_word),
]


class JobAnnotate(BaseModel):
    """The lab's own notes on a job: either field alone, or both. `tags` replaces the list
    (`[]` clears it); `note` replaces the note (`""` or null clears it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"tags": ["baseline", "paper-table-2"], "note": "PoE at 50%: HANS +6 points"},
                {"note": ""},
            ]
        },
    )

    tags: list[Tag] | None = Field(
        default=None,
        max_length=MAX_TAGS,
        description=f"At most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters: letters, "
        "digits and _ . : + / - (no spaces); duplicates are dropped, the order kept",
    )
    note: str | None = Field(
        default=None,
        max_length=MAX_NOTE_LENGTH,
        description=f"Free text, at most {MAX_NOTE_LENGTH} characters",
    )

    @field_validator("tags")
    @classmethod
    def _distinct(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else list(dict.fromkeys(tags))

    @field_validator("note")
    @classmethod
    def _no_nul(cls, note: str | None) -> str | None:
        if note is not None and "\x00" in note:
            raise ValueError("the note may not contain a NUL character")
        return note

    @model_validator(mode="after")
    def _something(self) -> JobAnnotate:
        if not self.model_fields_set & {"tags", "note"}:
            raise ValueError("nothing to change: give tags, note or both")
        return self


class JobList(BaseModel):
    data: list[JobPublic] = Field(description="One page of jobs, newest first")
    count: int = Field(description="Jobs matching the filter, all pages together")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last")


class JobEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Orders the events; the SSE id to resume from (Last-Event-ID)")
    at: datetime = Field(description="When it happened")
    kind: str = Field(description="created, status, stage, checkpoint, artifact or log")
    status: JobStatus | None = Field(description="The job's status after the event")
    message: str | None = Field(description="What happened, for people")
    data: dict[str, Any] | None = Field(
        description="The event's details (a stage's name and detail, a transition's from)"
    )

    @classmethod
    def of(cls, event: JobEvent) -> JobEventPublic:
        return cls.model_validate(event)


class MetricPoint(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="Orders the points")
    at: datetime = Field(description="When it was evaluated")
    stage: str = Field(description="The stage that evaluated (dense, search, retrain, teacher)")
    step: int = Field(description="The training step of the evaluation")
    seed: int | None = Field(description="The seed of the run")
    sparsity: float | None = Field(description="The target sparsity of the run; null for dense")
    selected: bool = Field(
        description="The point chosen for its curve (best ID score late in training)"
    )
    payload: dict[str, Any] = Field(
        description="The evaluation as recorded, one flat object: per evaluated set (dev, hans, "
        "paws, …) its metrics, beside selection, sparsity, train_loss and, on a selected mask, "
        "movement. Read `evaluation` instead: the same numbers, typed"
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="The payload typed: `sets` (set name → accuracy or F1, n, per-heuristic or "
        "per-class parts, the collapse fields) and the extras apart (selection, sparsity, "
        "train_loss, movement, extras)"
    )
    @property
    def evaluation(self) -> Evaluation:
        return Evaluation.from_payload(self.payload)

    @classmethod
    def of(cls, metric: Metric) -> MetricPoint:
        return cls.model_validate(metric)


class MetricCurve(BaseModel):
    """The evaluations of one (stage, seed, sparsity) and the point selected among them."""

    stage: str = Field(description="The stage")
    seed: int | None = Field(description="The seed")
    sparsity: float | None = Field(description="The target sparsity; null for dense")
    points: list[MetricPoint] = Field(description="Its evaluations in order")
    selected: MetricPoint | None = Field(description="The selected one; null until chosen")


class JobMetrics(BaseModel):
    job_id: uuid.UUID = Field(description="The job")
    curves: list[MetricCurve] = Field(
        description="One per stage, seed and sparsity, in the order they began"
    )
    selected: list[MetricPoint] = Field(description="The selected point of every curve")
