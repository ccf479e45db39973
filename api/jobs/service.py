"""The jobs domain's logic: the routes call these, the repositories run the queries."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.errors import JobNotCancellable
from api.jobs.schemas import (
    JobAnnotate,
    JobCreate,
    JobEventPublic,
    JobList,
    JobMetrics,
    JobPublic,
    MetricCurve,
    MetricPoint,
)
from api.submission import refuse_past_limits, submit_once
from persistence.broker import JobSender
from persistence.dispatch import DispatchPolicy
from persistence.repositories import (
    InvalidCursor,
    InvalidTransition,
    JobEventRepository,
    JobRepository,
    MetricRepository,
)
from persistence.settings import Settings
from persistence.tables import Job, JobStatus, Owner
from srcore.jobspec.canonical import canonical_hash
from srcore.jobspec.hub_check import offline_model_problem
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.jobspec.spec_paths import path_problems
from srcore.jobspec.task_registry import TaskConfigError, resolve_task

log = logging.getLogger(__name__)

_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*):\s*(.*)$", re.S)


def task_config_error(exc: TaskConfigError) -> RequestValidationError:
    """A registry error in the same 422 shape as pydantic's, `loc` at the field it names
    ("data.train: ..." -> ["body", "data", "train"])."""
    message = str(exc)
    match = _FIELD_PREFIX.match(message)
    loc: list[str] = ["body"]
    if match:
        loc += match.group(1).split(".")
        message = match.group(2)
    return RequestValidationError(
        [{"loc": tuple(loc), "msg": message, "type": "task_config", "input": None}]
    )


def check_local_paths(spec: JobSpec, roots: list[str]) -> None:
    """Every field that names something to load follows srcore.jobspec.spec_paths' rule: local
    paths absolute and under the service's DATA_ROOTS, `sample:` paths inside the bundled
    folder, hub ids of the hub's shape (422 naming each field): a job must not read the
    workers' own files."""
    bad = path_problems(spec, roots)
    if bad:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", *loc),
                    "input": raw,
                    "type": "path_not_allowed",
                    "msg": f"local path not allowed on this service: {why}",
                }
                for loc, raw, why in bad
            ]
        )


def create_job(
    session: Session,
    owner: Owner,
    body: JobCreate,
    *,
    idempotency_key: str | None,
    settings: Settings,
    enqueuer: JobSender,
) -> tuple[Job, bool]:
    """Validate against the task registry, store, commit, then enqueue. Answers the job and
    whether it is new (False: an idempotent replay)."""
    spec = body.spec()
    validate_spec(spec, settings)
    spec_json = spec.model_dump(mode="json")
    queue = body.queue or settings.default_queue
    # The validated request, not its bytes: key order and whitespace do not make it "other".
    request_hash = canonical_hash({"spec": spec_json, "queue": queue})
    jobs = JobRepository(session)

    def insert() -> tuple[Job, list[Job]]:
        refuse_past_limits(session, owner, settings, jobs=1)
        job = jobs.create(
            owner_id=owner.id,
            spec=spec_json,
            spec_hash=spec_hash(spec),
            queue=queue,
            max_attempts=settings.job_max_attempts,
            name=spec.name,
            idempotency_key=idempotency_key,
            request_hash=request_hash if idempotency_key else None,
        )
        return job, [job]

    job, new = submit_once(
        session,
        jobs,
        owner_id=owner.id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        insert=insert,
        enqueuer=enqueuer,
        policy=DispatchPolicy.from_settings(settings),
    )
    return (jobs.get(job.id) or job, True) if new else (job, False)


def validate_spec(spec: JobSpec, settings: Settings) -> None:
    """What a spec must pass beyond its pydantic model before it is stored: the task registry
    and the service's DATA_ROOTS (RequestValidationError, `loc` at the field)."""
    try:
        resolve_task(spec)
    except TaskConfigError as exc:
        raise task_config_error(exc) from exc
    check_local_paths(spec, settings.data_roots)
    problem = offline_model_problem(spec.model.name_or_path, spec.model.revision)
    if problem is not None:
        raise RequestValidationError([{"loc": ("body", "model", "name_or_path"), "msg": problem,
                                       "type": "model_unavailable_offline",
                                       "input": spec.model.name_or_path}])  # fmt: skip


def list_jobs(
    session: Session,
    owner: Owner,
    *,
    statuses: Iterable[JobStatus] | None,
    limit: int,
    cursor: str | None,
) -> JobList:
    jobs = JobRepository(session)
    statuses = list(statuses or [])
    try:
        page = jobs.list(owner.id, statuses=statuses, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error", "input": cursor}]
        ) from exc
    return JobList(
        data=[JobPublic.of(job) for job in page.items],
        count=jobs.count(owner.id, statuses=statuses),
        next_cursor=page.next_cursor,
    )


# How a finished state reads after "the job has already …".
_FINISHED_AS = {"succeeded": "succeeded", "failed": "failed", "cancelled": "been cancelled",
                "cancelling": "been asked to cancel"}  # fmt: skip


def cancel_job(session: Session, job: Job) -> Job:
    try:
        job = JobRepository(session).request_cancel(job.id)
    except InvalidTransition as exc:
        session.rollback()
        raise JobNotCancellable(
            f"the job has already {_FINISHED_AS.get(exc.current.value, exc.current.value)}; "
            "only a queued or running job can be cancelled"
        ) from exc
    session.commit()
    return job


def annotate_job(session: Session, job: Job, body: JobAnnotate) -> Job:
    """Write the fields the request set (tags, note, or both), then commit."""
    changes = {name: getattr(body, name) for name in body.model_fields_set & {"tags", "note"}}
    job = JobRepository(session).annotate(job.id, **changes)
    session.commit()
    return job


def list_events(
    session: Session, job: Job, *, after: int | None, limit: int
) -> list[JobEventPublic]:
    events = JobEventRepository(session).list(job.id, after_id=after, limit=limit)
    return [JobEventPublic.of(event) for event in events]


def job_metrics(session: Session, job: Job, *, limit: int) -> JobMetrics:
    curves: dict[tuple[str, int | None, float | None], MetricCurve] = {}
    for metric in MetricRepository(session).list(job.id, limit=limit):
        point = MetricPoint.of(metric)
        key = (metric.stage, metric.seed, metric.sparsity)
        curve = curves.setdefault(
            key,
            MetricCurve(
                stage=metric.stage,
                seed=metric.seed,
                sparsity=metric.sparsity,
                points=[],
                selected=None,
            ),
        )
        curve.points.append(point)
        if point.selected:
            curve.selected = point
    ordered = list(curves.values())  # in the order the curves began
    return JobMetrics(
        job_id=job.id,
        curves=ordered,
        selected=[c.selected for c in ordered if c.selected is not None],
    )
