"""The studies domain's logic: validate and expand a study before anything is stored, create
its child jobs through the jobs' path in one transaction, enqueue after commit; status, table
and plot from the children."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from api.errors import StudyNotCancellable
from api.jobs.service import validate_spec
from api.studies.progress import study_progress
from api.studies.schemas import (
    PairedComparison,
    SeedRecord,
    StudyChildPublic,
    StudyCreate,
    StudyDetail,
    StudyList,
    StudyPublic,
    StudyStatus,
    StudyTable,
    TableRecord,
)
from api.submission import refuse_past_limits, submit_once
from persistence.broker import JobSender
from persistence.dispatch import DispatchPolicy
from persistence.repositories import (
    ArtifactRepository,
    InvalidCursor,
    InvalidTransition,
    JobRepository,
    StudyRepository,
)
from persistence.settings import Settings
from persistence.tables import TERMINAL_STATUSES, ArtifactKind, Job, JobStatus, Owner, Study
from srcore.jobspec.canonical import canonical_hash
from srcore.jobspec.results import Evaluation
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.jobspec.study import StudyChild, StudyError, StudySpec, expand_study
from srcore.jobspec.study_compare import (
    INTERVAL,
    ComparisonError,
    PairedDifference,
    compare_rows,
    study_comparisons,
)
from srcore.jobspec.study_table import (
    SelectedPoint,
    TableRow,
    seed_records,
    study_table,
    table_records,
)

# --- validation ------------------------------------------------------------------------------


def _loc(field: str) -> tuple[str | int, ...]:
    """`axes[1].path` → ("axes", 1, "path"), as pydantic names list items."""
    loc: list[str | int] = []
    for part in field.split("."):
        name, _, rest = part.partition("[")
        if name:
            loc.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            loc.append(int(index))
            rest = rest.removeprefix("[")
    return tuple(loc)


def study_error(exc: StudyError) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", *_loc(exc.field)), "msg": exc.message, "type": "study", "input": None}]
    )


def _origin(study: StudySpec, child: StudyChild, field: tuple[Any, ...]) -> tuple[Any, ...]:
    """Where in the study a child's problem at spec `field` comes from: the axis or row that
    sets that field, else the base."""
    dotted = ".".join(str(x) for x in field)
    for i, axis in enumerate(study.axes):
        if axis.path in child.setting and (dotted + ".").startswith(axis.path + "."):
            return ("axes", i)
    for i, row in enumerate(study.rows):
        if child.key == f"row:{row.name}":
            return ("rows", i)
    for i, axis in enumerate(study.axes):
        if axis.path in child.setting:
            return ("axes", i)
    return ("base", *field)


def validate_children(study: StudySpec, children: Sequence[StudyChild], settings: Settings):
    """Every child must pass what a job must pass (task registry, DATA_ROOTS); a 422 names the
    axis, row or base field it comes from."""
    try:
        validate_spec(study.base, settings)
    except RequestValidationError as exc:
        raise _relocated(exc, lambda field: ("base", *field), "") from exc
    for child in children:
        try:
            validate_spec(child.spec, settings)
        except RequestValidationError as exc:
            shown = ", ".join(f"{p}={_show(v)}" for p, v in child.setting.items()) or "the base"
            raise _relocated(
                exc, lambda field, c=child: _origin(study, c, field), f"the job with {shown}: "
            ) from exc


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _relocated(exc: RequestValidationError, where, prefix: str) -> RequestValidationError:
    errors = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        field = loc[1:] if loc[:1] == ("body",) else loc
        dotted = ".".join(str(x) for x in field)
        message = f"{prefix}{dotted + ': ' if dotted and prefix else ''}{error.get('msg', '')}"
        errors.append({**error, "loc": ("body", *where(field)), "msg": message})
    return RequestValidationError(errors)


# --- creation --------------------------------------------------------------------------------


def _child_name(study: StudySpec, child: StudyChild) -> str:
    return f"{study.name or 'study'} · {child.label}"[:200]


def create_study(
    session: Session,
    owner: Owner,
    body: StudyCreate,
    *,
    idempotency_key: str | None,
    settings: Settings,
    enqueuer: JobSender,
) -> tuple[Study, bool]:
    """Validate and expand (422 before anything is stored), store the study and its jobs in
    one transaction, commit, then enqueue. Answers the study and whether it is new."""
    study = body.study()
    try:
        children = expand_study(study)
    except StudyError as exc:
        raise study_error(exc) from exc
    validate_children(study, children, settings)
    spec_json = study.model_dump(mode="json")
    queue = body.queue or settings.default_queue
    request_hash = canonical_hash({"study": spec_json, "queue": queue})
    studies, jobs = StudyRepository(session), JobRepository(session)

    def insert() -> tuple[Study, list[Job]]:
        refuse_past_limits(session, owner, settings, jobs=len(children), studies=1)
        row = studies.create(
            owner_id=owner.id,
            spec=spec_json,
            children=[
                {"key": c.key, "label": c.label, "role": c.role, "setting": c.setting}
                for c in children
            ],
            queue=queue,
            name=study.name,
            idempotency_key=idempotency_key,
            request_hash=request_hash if idempotency_key else None,
        )
        created = [
            jobs.create(
                owner_id=owner.id,
                spec=child.spec.model_dump(mode="json"),
                spec_hash=spec_hash(child.spec),
                queue=queue,
                max_attempts=settings.job_max_attempts,
                name=_child_name(study, child),
                study_id=row.id,
                study_key=child.key,
            )
            for child in children
        ]
        return row, created

    return submit_once(
        session,
        studies,
        owner_id=owner.id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        insert=insert,
        enqueuer=enqueuer,
        policy=DispatchPolicy.from_settings(settings),
    )


# --- reads -----------------------------------------------------------------------------------


def study_status(counts: dict[JobStatus, int]) -> StudyStatus:
    total = sum(counts.values())
    finished = sum(counts[s] for s in TERMINAL_STATUSES)
    if total == 0 or counts[JobStatus.queued] == total:
        return "queued"
    if finished < total:
        return "running"
    if counts[JobStatus.failed]:
        return "failed"
    if counts[JobStatus.cancelled]:
        return "cancelled"
    return "succeeded"


def _public(
    study: Study, counts: dict[JobStatus, int], children: Sequence[Job] | None = None
) -> dict[str, Any]:
    return {
        "id": study.id,
        "name": study.name,
        "status": study_status(counts),
        "counts": counts,
        "jobs": sum(counts.values()),
        "progress": study_progress(children) if children is not None else None,
        "queue": study.queue,
        "created_at": study.created_at,
    }


def list_studies(session: Session, owner: Owner, *, limit: int, cursor: str | None) -> StudyList:
    studies = StudyRepository(session)
    try:
        page = studies.list(owner.id, limit=limit, cursor=cursor)
    except InvalidCursor as exc:
        raise RequestValidationError(
            [{"loc": ("query", "cursor"), "msg": str(exc), "type": "value_error", "input": cursor}]
        ) from exc
    counts = studies.status_counts(s.id for s in page.items)
    return StudyList(
        data=[
            StudyPublic.model_validate(_public(s, counts[s.id], studies.children(s.id)))
            for s in page.items
        ],
        count=studies.count(owner.id),
        next_cursor=page.next_cursor,
    )


def _table_children(study: Study) -> list[StudyChild]:
    # The table reads key, label, role and setting only; the child's spec is not needed, so a
    # later srcore never has to re-validate it.
    return [
        StudyChild(c["key"], c["label"], c["role"], dict(c["setting"]), JobSpec.model_construct())
        for c in study.children
    ]


def _eval_sets(payload: dict[str, Any]) -> dict[str, Any]:
    """The evaluated sets of a metric payload, read by `Evaluation` (extras left out)."""
    return {name: m.as_json() for name, m in Evaluation.from_payload(payload).sets.items()}


def _mask_hashes(session: Session, job_ids: set[uuid.UUID]) -> dict[tuple, str]:
    """(job id, seed, sparsity) → the sha256 of that unit's mask artifact."""
    artifacts = ArtifactRepository(session)
    return {
        (job_id, a.seed, round(float(a.sparsity), 6)): a.sha256
        for job_id in job_ids
        for a in artifacts.list(job_id)
        if a.kind == ArtifactKind.mask and a.seed is not None and a.sparsity is not None
    }


def table_rows(session: Session, study: Study) -> list[TableRow]:
    """The results table from the children's selected points recorded in the database, each
    point naming its job, its selected step and its mask artifact's sha256."""
    selected = StudyRepository(session).selected_points(study.id)
    masks = _mask_hashes(session, {m.job_id for _, m in selected if m.stage != "dense"})
    points = []
    for key, metric in selected:
        dense = metric.stage == "dense"
        seed = int(metric.seed or 0)
        sparsity = 0.0 if dense else float(metric.sparsity or 0.0)
        points.append(
            SelectedPoint(
                child=key,
                kind="dense" if dense else "subnetwork",
                seed=seed,
                sparsity=sparsity,
                metrics=_eval_sets(metric.payload),
                movement=Evaluation.from_payload(metric.payload).movement,
                job=str(metric.job_id),
                selected_step=metric.step,
                mask_sha256=None if dense else masks.get((metric.job_id, seed, round(sparsity, 6))),
            )
        )
    return study_table(_table_children(study), points)


def records(rows: Sequence[TableRow]) -> list[TableRecord]:
    return [TableRecord.model_validate(r) for r in table_records(rows)]


def comparisons(
    study: Study,
    rows: Sequence[TableRow],
    seeds: Sequence[dict[str, Any]],
    a: str | None,
    b: str | None,
    sparsity: float | None,
) -> list[PairedDifference]:
    """`a − b` paired by seed when both rows are named (422 naming `a`, `b` or `sparsity`
    otherwise), else the table's default pairs."""
    if (a is None) != (b is None):
        missing = "b" if b is None else "a"
        message = "give both `a` and `b` to compare two rows"
        raise RequestValidationError(
            [{"loc": ("query", missing), "msg": message, "type": "missing", "input": None}]
        )
    if a is None or b is None:
        return study_comparisons(rows, seeds, study.spec["base"]["debias"]["loss"])
    try:
        return compare_rows(seeds, a, b, sparsity)
    except ComparisonError as exc:
        loc = {"row_a": "a", "row_b": "b"}.get(exc.field, exc.field)
        raise RequestValidationError(
            [{"loc": ("query", loc), "msg": exc.message, "type": "value_error", "input": None}]
        ) from exc


def study_table_body(
    study: Study,
    rows: Sequence[TableRow],
    diffs: Sequence[PairedDifference],
) -> StudyTable:
    return StudyTable(
        study_id=study.id,
        study=study.spec,
        records=records(rows),
        seeds=[SeedRecord.model_validate(r) for r in seed_records(rows)],
        interval=INTERVAL,
        comparisons=[PairedComparison.model_validate(d.as_record()) for d in diffs],
    )


def study_detail(session: Session, study: Study) -> StudyDetail:
    child_jobs = StudyRepository(session).children(study.id)
    jobs = {job.study_key: job for job in child_jobs}
    counts = dict.fromkeys(JobStatus, 0)
    children = []
    for child in study.children:
        job = jobs.get(child["key"])
        if job is None:
            continue
        counts[job.job_status] += 1
        children.append(StudyChildPublic.model_validate({**child, "job_id": job.id,
                                                         "status": job.status}))  # fmt: skip
    return StudyDetail.model_validate(
        {
            **_public(study, counts, child_jobs),
            "spec": study.spec,
            "children": children,
            "table": records(table_rows(session, study)),
        }
    )


def render_plot(rows: Sequence[TableRow], title: str) -> bytes:
    from srcore.jobspec.study_plot import study_png

    return study_png(rows, title=title)


def cancel_study(session: Session, study: Study) -> int:
    """Cancel every child not finished; answers how many. 409 when all had finished."""
    repository = JobRepository(session)
    cancelled = 0
    for job in StudyRepository(session).children(study.id):
        if job.job_status in TERMINAL_STATUSES:
            continue
        try:
            repository.request_cancel(job.id)
            cancelled += 1
        except InvalidTransition:
            continue  # it finished in between
    if not cancelled:
        session.rollback()
        raise StudyNotCancellable()
    session.commit()
    return cancelled


def child_jobs(session: Session, study: Study) -> list[Job]:
    return StudyRepository(session).children(study.id)
