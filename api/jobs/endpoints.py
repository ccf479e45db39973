"""HTTP routes of the jobs domain (all scoped to the caller's owner; others' jobs are 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from api.deps import (
    CurrentOwner,
    DatabaseDep,
    EnqueuerDep,
    OwnedJob,
    SessionDep,
    SettingsDep,
    idempotency_key_header,
)
from api.errors import (
    IdempotencyKeyReused,
    JobNotCancellable,
    JobNotFound,
    OwnerLimitExceeded,
    PayloadTooLarge,
    Unauthorized,
    responses,
)
from api.jobs import service
from api.jobs.examples import openapi_examples
from api.jobs.schemas import (
    JobAnnotate,
    JobCreate,
    JobDetail,
    JobEventPublic,
    JobList,
    JobMetrics,
)
from api.jobs.stream import MAX_EVENT_ID, job_event_stream, parse_last_event_id
from persistence.dispatch import DispatchPolicy, queue_place
from persistence.repositories import MAX_PAGE_SIZE
from persistence.tables import JobStatus

router = APIRouter(prefix="/jobs", tags=["jobs"])
IdempotencyKey = idempotency_key_header("job")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=JobDetail,
    summary="Submit a search job",
    description=(
        "The body is a job spec (every field optional; defaults filled in and returned in "
        "`spec`) plus an optional `queue`. It is checked against the task registry, the "
        "service's data roots and, offline, the hub cache before anything is stored: an invalid"
        " spec answers 422 with `loc` naming the field, and nothing is queued. The job is sent "
        "to the workers after its row is committed. The examples are the web form's presets "
        "(the paper's settings)."
    ),
    responses={
        200: {"model": JobDetail, "description": "Idempotent replay: the job made earlier"},
        **responses(Unauthorized, IdempotencyKeyReused, PayloadTooLarge, OwnerLimitExceeded),
    },
)
def create_job(
    body: Annotated[JobCreate, Body(openapi_examples=openapi_examples())],
    response: Response,
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    enqueuer: EnqueuerDep,
    idempotency_key: IdempotencyKey = None,
) -> JobDetail:
    job, created = service.create_job(
        session,
        owner,
        body,
        idempotency_key=idempotency_key,
        settings=settings,
        enqueuer=enqueuer,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return JobDetail.of(job)


@router.get(
    "",
    response_model=JobList,
    summary="List jobs",
    description=(
        "This key's jobs, newest first, keyset-paginated: pass `next_cursor` back as `cursor` "
        "for the next page. `status` may repeat. Each job carries its progress and ETA; the "
        "spec is only in `GET /jobs/{job_id}`."
    ),
    responses=responses(Unauthorized),
)
def list_jobs(
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    status_filter: Annotated[
        list[JobStatus] | None, Query(alias="status", description="Only these statuses")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> JobList:
    page_size = min(limit or settings.default_page_size, settings.max_page_size)
    return service.list_jobs(session, owner, statuses=status_filter, limit=page_size, cursor=cursor)


@router.get(
    "/{job_id}",
    response_model=JobDetail,
    summary="A job: status, stage, progress, ETA, error, timestamps, attempt",
    description=(
        "The job with its spec (defaults filled in), `spec_hash`, the current stage's progress "
        "and the whole job's (`progress.job_fraction`, `job_eta_s`, `elapsed_s`), the error of "
        "a failed job, and the lab's tags and note. A queued job has `queue_place`: its "
        "position (1: next to start) and why it waits (owners take turns; per-owner running "
        "limit). Another key's job, or an id that is not one, answers 404."
    ),
    responses=responses(Unauthorized, JobNotFound),
)
def get_job(job: OwnedJob, session: SessionDep, settings: SettingsDep) -> JobDetail:
    return JobDetail.of(job, queue_place(session, job, DispatchPolicy.from_settings(settings)))


@router.patch(
    "/{job_id}",
    response_model=JobDetail,
    summary="Tag a job or write a note on it (the owner's own; the job itself is unchanged)",
    description="Either field alone or both: `tags` replaces the list (`[]` clears it), `note` "
    "replaces the note (`\"\"` or null clears it). Any status, finished jobs too. The tags and "
    "note show on the job page, in `srnet status` and in the runs table (`GET /runs?tag=`).",
    responses={
        **responses(Unauthorized, JobNotFound),
        422: {"description": "A tag or the note breaks its bound: `loc` names the field "
              "(`body.tags.3`, `body.note`)"},
    },
)  # fmt: skip
def annotate_job(job: OwnedJob, body: JobAnnotate, session: SessionDep) -> JobDetail:
    return JobDetail.of(service.annotate_job(session, job, body))


@router.post(
    "/{job_id}/cancel",
    response_model=JobDetail,
    summary="Cancel a job (queued: at once; running: the worker stops between two steps)",
    description=(
        "A queued job becomes `cancelled` at once; a running one `cancelling` until the worker "
        "stops between two steps (then `cancelled`). A finished job answers 409 "
        "`job_not_cancellable`."
    ),
    responses=responses(Unauthorized, JobNotFound, JobNotCancellable),
)
def cancel_job(job: OwnedJob, session: SessionDep) -> JobDetail:
    return JobDetail.of(service.cancel_job(session, job))


@router.get(
    "/{job_id}/events",
    response_model=list[JobEventPublic],
    summary="The job's lifecycle log",
    description=(
        "Every event in order (created, status changes, stages, checkpoints, artifacts, log "
        "lines), at most a page at a time: pass the last `id` seen as `after` for the rest."
    ),
    responses=responses(Unauthorized, JobNotFound),
)
def list_events(
    job: OwnedJob,
    session: SessionDep,
    settings: SettingsDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="Only events after this id")
    ] = None,
) -> list[JobEventPublic]:
    return service.list_events(session, job, after=after, limit=settings.max_events_per_page)


@router.get(
    "/{job_id}/events/stream",
    summary="The job's events as server-sent events",
    description=(
        "The lifecycle log live: `event: event` per log entry (its `id` is the event id, so a "
        "reconnect with `Last-Event-ID` or `last_event_id` resumes without loss), `event: "
        "progress` with the job whenever it changes, and a final `event: end` once the job has "
        "finished (or the server shuts down). Comment lines keep the connection alive."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`event: event` (id = event id, for Last-Event-ID), "
            "`event: progress` (the job), `event: end` once the job has finished",
        },
        **responses(Unauthorized, JobNotFound),
    },
)
async def stream_events(
    request: Request,
    job: OwnedJob,
    session: SessionDep,
    database: DatabaseDep,
    settings: SettingsDep,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="For clients that cannot set Last-Event-ID"),
    ] = None,
) -> StreamingResponse:
    after = parse_last_event_id(last_event_id_header)
    if after is None:
        after = last_event_id
    # The stream may last hours: give the request's connection back to the pool now (each poll
    # takes one briefly).
    session.close()
    return StreamingResponse(
        job_event_stream(
            request,
            database,
            job.id,
            last_event_id=after,
            poll_interval_s=settings.sse_poll_interval_s,
            keepalive_s=settings.sse_keepalive_s,
            shutdown=getattr(request.app.state, "shutdown", None),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/{job_id}/metrics",
    response_model=JobMetrics,
    summary="Evaluation curves and the selected point per seed and sparsity",
    description=(
        "Every evaluation the worker recorded, grouped into curves by (stage, seed, sparsity), "
        "each with its selected point (best ID score late in training), and the selected points"
        " together. A payload holds one entry per evaluated set (`dev`, `hans`, …) with "
        "accuracy or F1 and the set's own metrics, plus `train_loss`."
    ),
    responses=responses(Unauthorized, JobNotFound),
)
def job_metrics(job: OwnedJob, session: SessionDep, settings: SettingsDep) -> JobMetrics:
    return service.job_metrics(session, job, limit=settings.max_metric_points)
