"""HTTP routes of the studies domain: a grid of ordinary jobs and its results table (all
scoped to the caller's owner; others' studies are 404)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response, status

from api.deps import (
    CurrentOwner,
    EnqueuerDep,
    OwnedStudy,
    SessionDep,
    SettingsDep,
    idempotency_key_header,
)
from api.errors import (
    IdempotencyKeyReused,
    OwnerLimitExceeded,
    PayloadTooLarge,
    StudyNotCancellable,
    StudyNotFound,
    Unauthorized,
    responses,
)
from api.studies import service
from api.studies.examples import study_openapi_examples
from api.studies.schemas import StudyCreate, StudyDetail, StudyList, StudyTable
from persistence.repositories import MAX_PAGE_SIZE
from srcore.jobspec.study import MAX_STUDY_JOBS
from srcore.jobspec.study_compare import comparisons_csv
from srcore.jobspec.study_table import seed_records, seeds_csv, table_csv

router = APIRouter(prefix="/studies", tags=["studies"])
IdempotencyKey = idempotency_key_header("study")

_VALIDATION = {
    422: {
        "description": "The study is invalid: `loc` names the field (`body.axes.1.path`, "
        f"`body.rows.0`, `body.base.…`); at most {MAX_STUDY_JOBS} jobs per study, dense "
        "references included. Nothing is stored or queued."
    }
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=StudyDetail,
    summary="Submit a study: a base job spec, axes and rows, expanded to child jobs",
    description=(
        "The study is validated and expanded (every axis value and row applied to the base "
        "spec, dense references added per loss) before anything is stored; every child must "
        "pass what a job must pass. The study and its child jobs are stored in one transaction "
        "and enqueued after commit."
    ),
    responses={
        200: {"model": StudyDetail, "description": "Idempotent replay: the study made earlier"},
        **responses(Unauthorized, IdempotencyKeyReused, PayloadTooLarge, OwnerLimitExceeded),
        **_VALIDATION,
    },
)
def create_study(
    body: Annotated[StudyCreate, Body(openapi_examples=study_openapi_examples())],
    response: Response,
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    enqueuer: EnqueuerDep,
    idempotency_key: IdempotencyKey = None,
) -> StudyDetail:
    study, created = service.create_study(
        session, owner, body, idempotency_key=idempotency_key, settings=settings,
        enqueuer=enqueuer,
    )  # fmt: skip
    if not created:
        response.status_code = status.HTTP_200_OK
    return service.study_detail(session, study)


@router.get(
    "",
    response_model=StudyList,
    summary="List studies",
    description=(
        "This key's studies, newest first, keyset-paginated, each with its status and how many "
        "children are in each status."
    ),
    responses=responses(Unauthorized),
)
def list_studies(
    session: SessionDep,
    owner: CurrentOwner,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE_SIZE)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> StudyList:
    page_size = min(limit or settings.default_page_size, settings.max_page_size)
    return service.list_studies(session, owner, limit=page_size, cursor=cursor)


@router.get(
    "/{study_id}",
    response_model=StudyDetail,
    summary="A study: status from its children, the children, the results table",
    description=(
        "Status and counts from the children, each child (job id, key, label, role, status) and"
        " the results table so far (mean ± sd (n) over seeds per row, sparsity and metric)."
    ),
    responses=responses(Unauthorized, StudyNotFound),
)
def get_study(study: OwnedStudy, session: SessionDep) -> StudyDetail:
    return service.study_detail(session, study)


@router.get(
    "/{study_id}/table",
    response_model=StudyTable,
    summary="The results table: means, per-seed records and paired comparisons",
    description=(
        "Built from the children's selected points in the database now: the search rows, then "
        "per loss its dense reference and one-shot magnitude subnetworks. `records`: mean ± sd "
        "(n) over seeds per row, sparsity and metric (`collapsed` counts the seeds whose model "
        "answered one class for almost all of a set); `seeds`: one record per row, sparsity, "
        "seed and metric with the child job, the selected step and the mask's sha256; "
        "`comparisons`: `a − b` paired by seed with a 95% t interval over the seeds, for the "
        "two rows `a` and `b` (a row with only a dense model pairs with every sparsity of the "
        "other), or, without them, every row against dense CE, every debiased row against "
        "its loss's dense model and against the same setting with the CE loss. CSV "
        "(`format=csv`) gives one of the three, chosen by `records`."
    ),
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "JSON (`format=json`) or CSV (`format=csv`; `records=means`: row, "
            "role, setting, sparsity, metric, mean, sd, n, collapsed; `records=seeds`: row, "
            "role, child, job, seed, sparsity, metric, value, selected_step, mask_sha256, "
            "collapsed; `records=comparisons`: row_a, sparsity_a, row_b, sparsity_b, metric, n, "
            "mean_difference, sd, low, high, seeds)",
        },
        422: {
            "description": "Only one of `a`/`b`, or a row or sparsity the table lacks (`loc` "
            "names the query parameter)"
        },
        **responses(Unauthorized, StudyNotFound),
    },
)
def study_table(
    study: OwnedStudy,
    session: SessionDep,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
    records: Annotated[
        Literal["means", "seeds", "comparisons"],
        Query(description="Which records the CSV holds (JSON holds all three)"),
    ] = "means",
    a: Annotated[str | None, Query(max_length=100, description="Row label: compare a − b")] = None,
    b: Annotated[str | None, Query(max_length=100, description="Row label subtracted")] = None,
    sparsity: Annotated[
        float | None, Query(ge=0, lt=1, description="Only this sparsity of row `a`")
    ] = None,
) -> StudyTable | Response:
    rows = service.table_rows(session, study)
    seeds = seed_records(rows)
    diffs = service.comparisons(study, rows, seeds, a, b, sparsity)
    if format == "json":
        return service.study_table_body(study, rows, diffs)
    text = {
        "means": lambda: table_csv(rows),
        "seeds": lambda: seeds_csv(rows),
        "comparisons": lambda: comparisons_csv(diffs),
    }[records]()
    suffix = "" if records == "means" else f"-{records}"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="study-{study.id}{suffix}.csv"'},
    )


@router.get(
    "/{study_id}/plot.png",
    summary="The study plot: ID and OOD accuracy against sparsity, dense models dashed",
    description="A PNG rendered from the results table on request (matplotlib on the API host).",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "Rendered from the table now"},
        **responses(Unauthorized, StudyNotFound),
    },
)
def study_plot(study: OwnedStudy, session: SessionDep) -> Response:
    png = service.render_plot(service.table_rows(session, study), study.name or "")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.post(
    "/{study_id}/cancel",
    response_model=StudyDetail,
    summary="Cancel every child job not finished",
    description=(
        "Queued children are cancelled at once, running ones stop between two steps. 409 "
        "`study_not_cancellable` when every child had already finished."
    ),
    responses=responses(Unauthorized, StudyNotFound, StudyNotCancellable),
)
def cancel_study(study: OwnedStudy, session: SessionDep) -> StudyDetail:
    service.cancel_study(session, study)
    return service.study_detail(session, study)
