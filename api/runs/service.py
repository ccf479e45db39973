"""The runs table: across every job of an owner (plain jobs and study children), one row per
job × stage × sparsity with the seeds' selected points averaged, built from the selected
Metric rows in the database; filtered and sorted here, CSV or JSON."""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from api.runs.schemas import RunRow, RunTable
from persistence.repositories import RunPoint, RunRepository
from persistence.tables import Owner
from srcore.jobspec.results import Evaluation, SetMetrics

MAX_RUN_JOBS = 1000  # the newest jobs with a selected point; `truncated` says when cut
ID_SET = "dev"
SPARSITY_TOLERANCE = 5e-4  # a filter of 0.5 matches 0.4996 (an exact sparsity reached)

CSV_COLUMNS = ("job_id", "job_name", "status", "created_at", "study_id", "study_name", "task",
               "loss", "method", "scenario", "structure", "stage", "sparsity", "n", "seeds",
               "id_set", "id_metric", "ood_set", "ood_metric")  # fmt: skip
CSV_TAIL = ("collapsed", "collapsed_sets", "tags", "note")


@dataclass(frozen=True)
class RunFilter:
    task: str | None = None
    loss: str | None = None
    method: str | None = None
    scenario: str | None = None
    structure: str | None = None
    stage: str | None = None
    sparsity: float | None = None
    tags: tuple[str, ...] = ()  # every one of them must be on the job
    status: str | None = None

    def keeps(self, row: RunRow) -> bool:
        for name in ("task", "loss", "method", "scenario", "structure", "stage", "status"):
            wanted = getattr(self, name)
            if wanted is not None and getattr(row, name) != wanted:
                return False
        if self.sparsity is not None and abs(row.sparsity - self.sparsity) > SPARSITY_TOLERANCE:
            return False
        return all(tag in row.tags for tag in self.tags)


def _sets(evaluation: Evaluation) -> dict[str, SetMetrics]:
    """The sets of an evaluation that have a headline number (accuracy, else F1)."""
    return {name: m for name, m in evaluation.sets.items() if m.headline is not None}


def _sparsity(point: RunPoint) -> float:
    metric = point.metric
    if metric.stage == "dense":
        return 0.0
    if metric.sparsity is not None:
        return float(metric.sparsity)
    reported = Evaluation.from_payload(metric.payload).sparsity
    return float(reported) if reported is not None else 0.0


def _spec(job_spec: dict[str, Any], *path: str) -> str:
    node: Any = job_spec
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return str(node) if node is not None else ""


def _row(group: list[RunPoint]) -> RunRow:
    first = group[0]
    job, metric = first.job, first.metric
    spec = job.spec or {}
    loss = _spec(spec, "debias", "loss")
    if metric.stage == "dense" and _spec(spec, "dense", "loss") == "none":
        loss = "none"
    by_set: dict[str, list[float]] = {}
    collapsed: set[str] = set()
    for point in group:
        for name, values in _sets(Evaluation.from_payload(point.metric.payload)).items():
            by_set.setdefault(name, []).append(values.headline or 0.0)
            if values.collapsed:
                collapsed.add(name)
    means = {name: statistics.fmean(values) for name, values in by_set.items()}
    ood = {name: value for name, value in sorted(means.items()) if name != ID_SET}
    ood_set = next(iter(ood), None)
    return RunRow(
        job_id=job.id,
        job_name=job.name,
        status=job.status,
        created_at=job.created_at,
        study_id=job.study_id,
        study_name=first.study_name,
        task=_spec(spec, "task"),
        loss=loss,
        method=_spec(spec, "pruning", "method"),
        scenario=_spec(spec, "pruning", "scenario"),
        structure=_spec(spec, "pruning", "structure") or "unstructured",
        stage=metric.stage,
        sparsity=_sparsity(first),
        seeds=sorted(int(p.metric.seed or 0) for p in group),
        n=len(group),
        id_set=ID_SET if ID_SET in means else None,
        id_metric=means.get(ID_SET),
        ood_set=ood_set,
        ood_metric=ood.get(ood_set) if ood_set else None,
        ood=ood,
        collapsed=bool(collapsed),
        collapsed_sets=sorted(collapsed),
        tags=list(job.tags or []),
        note=job.note,
    )


def build_rows(points: Sequence[RunPoint]) -> list[RunRow]:
    """Group the selected points by (job, stage, sparsity); jobs keep the repository's order
    (newest first), a job's rows go by stage then sparsity."""
    groups: dict[tuple[Any, str, float], list[RunPoint]] = {}
    for point in points:
        key = (point.job.id, point.metric.stage, round(_sparsity(point), 6))
        groups.setdefault(key, []).append(point)
    order = {"dense": 0, "search": 1, "retrain": 2}
    jobs: dict[Any, list[RunRow]] = {}
    for (job_id, _stage, _reached), group in groups.items():
        jobs.setdefault(job_id, []).append(_row(group))
    rows: list[RunRow] = []
    for job_rows in jobs.values():
        rows += sorted(job_rows, key=lambda r: (order.get(r.stage, 9), r.sparsity))
    return rows


def sort_rows(rows: list[RunRow], sort: Sequence[str]) -> list[RunRow]:
    """Stable sorts from the last key to the first; a missing value sorts last either way."""
    for spec in reversed(sort):
        descending = spec.startswith("-")
        name = spec.lstrip("-")

        def value(row: RunRow, name: str = name) -> Any:
            if name.startswith("ood."):
                return row.ood.get(name[4:])
            got = getattr(row, name)
            return got.lower() if isinstance(got, str) else got

        present = [r for r in rows if value(r) is not None]
        missing = [r for r in rows if value(r) is None]
        rows = sorted(present, key=value, reverse=descending) + missing
    return rows


def runs_table(
    session: Session,
    owner: Owner,
    *,
    filters: RunFilter,
    study_id: Any = None,
    sort: Sequence[str] = (),
    max_jobs: int = MAX_RUN_JOBS,
) -> RunTable:
    repository = RunRepository(session)
    points = repository.selected_points(owner.id, study_id=study_id, max_jobs=max_jobs)
    rows = [row for row in build_rows(points) if filters.keeps(row)]
    rows = sort_rows(rows, sort)
    jobs_read = len({p.job.id for p in points})
    truncated = jobs_read >= max_jobs and repository.count_jobs_with_points(owner.id) > jobs_read
    ood_sets = sorted({name for row in rows for name in row.ood})
    return RunTable(data=rows, count=len(rows), ood_sets=ood_sets, truncated=truncated)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return value


def runs_csv(table: RunTable) -> str:
    """One line per row; an `ood.<set>` column per OOD set any row has; lists joined by `;`."""
    buffer = io.StringIO()
    ood_columns = [f"ood.{name}" for name in table.ood_sets]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_COLUMNS, *ood_columns, *CSV_TAIL])
    for row in table.data:
        data = row.model_dump(mode="json")
        line = [_csv_value(data[c]) for c in CSV_COLUMNS]
        line += [_csv_value(row.ood.get(c[4:])) for c in ood_columns]
        line += [_csv_value(data[c]) for c in CSV_TAIL]
        writer.writerow(line)
    return buffer.getvalue()
