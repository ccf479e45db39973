"""HTTP route of the runs table: every job of the caller's (plain and study children), one row
per job × stage × sparsity, filtered, sorted, as JSON or CSV."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.exceptions import RequestValidationError

from api.deps import CurrentOwner, SessionDep
from api.errors import Unauthorized, responses
from api.runs import service
from api.runs.schemas import SORT_KEYS, RunTable
from persistence.tables import JobStatus
from srcore.jobspec.names import LossName, MethodName
from srcore.jobspec.spec import ScenarioName, StructureName, TaskName

router = APIRouter(prefix="/runs", tags=["runs"])
MAX_TAG_FILTERS = 10


def _sort_keys(raw: list[str] | None) -> list[str]:
    keys = [k.strip() for item in raw or [] for k in item.split(",") if k.strip()]
    for key in keys:
        name = key.lstrip("-")
        if name not in SORT_KEYS and not (name.startswith("ood.") and len(name) > 4):
            raise RequestValidationError(
                [{"loc": ("query", "sort"), "type": "value_error", "input": key,
                  "msg": f"cannot sort by '{name}'; sort by one of {', '.join(SORT_KEYS)} or "
                  "ood.<set>, with a leading - for descending"}]
            )  # fmt: skip
    return keys or ["-created_at"]


def _study(raw: str | None) -> uuid.UUID | None:
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "study"), "type": "uuid_parsing", "input": raw,
              "msg": "a study id (UUID)"}]
        ) from exc  # fmt: skip


@router.get(
    "",
    response_model=RunTable,
    summary="The runs table: every job's selected points, a row per job × stage × sparsity",
    description=(
        "Across all of this key's jobs, plain and study children alike: one row per job, stage "
        "(dense, search, retrain) and sparsity, the selected point of each seed averaged "
        "(`seeds`, `n`). ID and OOD headline metrics are accuracy, else F1. Rows of the newest "
        f"{service.MAX_RUN_JOBS} jobs with a selected point (`truncated` says when more exist). "
        "Filters combine with AND; `tag` may repeat (every tag must be on the job). `sort` takes "
        "comma-separated keys, a leading `-` for descending (default `-created_at`: newest "
        "jobs first). `format=csv` answers a CSV file with one `ood.<set>` column per OOD set."
    ),
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "JSON (`format=json`) or CSV (`format=csv`)",
        },
        **responses(Unauthorized),
    },
)
def runs(
    session: SessionDep,
    owner: CurrentOwner,
    task: Annotated[TaskName | None, Query(description="Only this task")] = None,
    loss: Annotated[LossName | None, Query(description="Only models with this loss")] = None,
    method: Annotated[MethodName | None, Query(description="Only jobs of this method")] = None,
    scenario: Annotated[ScenarioName | None, Query(description="Only this scenario")] = None,
    structure: Annotated[
        StructureName | None, Query(description="Only jobs of this pruning.structure")
    ] = None,
    stage: Annotated[
        Literal["dense", "search", "retrain"] | None, Query(description="Only this stage")
    ] = None,
    sparsity: Annotated[
        float | None,
        Query(ge=0.0, le=1.0, allow_inf_nan=False, description="Only this sparsity (0: dense)"),
    ] = None,
    tag: Annotated[
        list[Annotated[str, Query(max_length=40)]] | None,
        Query(max_length=MAX_TAG_FILTERS, description="Only jobs carrying every one of these"),
    ] = None,
    study: Annotated[str | None, Query(max_length=64, description="Only this study's jobs")] = None,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
    sort: Annotated[
        list[Annotated[str, Query(max_length=200)]] | None,
        Query(max_length=10, description=f"Keys: {', '.join(SORT_KEYS)}, ood.<set>"),
    ] = None,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> RunTable | Response:
    filters = service.RunFilter(
        task=task, loss=loss, method=method, scenario=scenario, structure=structure,
        stage=stage, sparsity=sparsity,
        tags=tuple(tag or ()), status=status.value if status else None,
    )  # fmt: skip
    keys = _sort_keys(sort)
    table = service.runs_table(session, owner, filters=filters, study_id=_study(study), sort=keys)
    # ood.<set> names a set of the data: one no run has would sort nothing, silently.
    unknown = [k for k in keys if k.lstrip("-").startswith("ood.")
               and table.data and k.lstrip("-")[4:] not in table.ood_sets]  # fmt: skip
    if unknown:
        sets = ", ".join(f"ood.{name}" for name in table.ood_sets) or "none"
        raise RequestValidationError(
            [{"loc": ("query", "sort"), "type": "value_error", "input": unknown[0],
              "msg": f"no run here has the OOD set '{unknown[0].lstrip('-')[4:]}'; the OOD "
              f"sets of these runs: {sets}"}]
        )  # fmt: skip
    if format == "csv":
        return Response(
            service.runs_csv(table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="srnet-runs.csv"'},
        )
    return table
