"""A study's results table: the selected point of every child job, per row and sparsity, as
mean ± sd (n) over seeds; torch-free (the API builds it from the database).

Rows in study order: the searches, then per dense reference its dense model and its one-shot
magnitude subnetworks. In a study with dense references, a search whose dense model no
reference holds (another data set, an early stop) also shows that dense model, as the row
`<search>: dense start` before its own.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from srcore.jobspec.results import SearchResult, SetMetrics
from srcore.jobspec.spec import dense_identity
from srcore.jobspec.study import Role, StudyChild


@dataclass(frozen=True)
class SelectedPoint:
    """One selected evaluation of one child job: a dense model (sparsity 0) or a subnetwork."""

    child: str  # StudyChild.key
    kind: Literal["dense", "subnetwork"]
    seed: int
    sparsity: float
    metrics: Mapping[str, Any]  # {set name: {accuracy, entailed, ..., collapsed}}
    movement: Mapping[str, Any] | None = None
    # where the point comes from, so a cell can be traced back and recomputed:
    job: str | None = None  # the service's job id; a local study: the child's folder
    selected_step: int | None = None
    mask_sha256: str | None = None  # the subnetwork's mask artifact (None: a dense model)


@dataclass(frozen=True)
class SeedEntry:
    """One seed of one cell: its numbers and where they come from."""

    seed: int
    child: str
    job: str | None
    selected_step: int | None
    mask_sha256: str | None
    values: dict[str, float]  # flat metric → value
    collapsed: frozenset[str]  # sets this seed's model collapsed on


@dataclass
class Cell:
    """Mean ± sd over seeds of every metric of one (row, sparsity), and the seeds behind it."""

    values: dict[str, list[float]] = field(default_factory=dict)
    collapsed: dict[str, int] = field(default_factory=dict)  # set → seeds that collapsed
    seeds: list[int] = field(default_factory=list)
    entries: list[SeedEntry] = field(default_factory=list)

    def stats(self, metric: str) -> tuple[float, float, int] | None:
        values = self.values.get(metric)
        if not values:
            return None
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), sd, len(values)

    def add(self, point: SelectedPoint) -> None:
        values = flatten_metrics(point.metrics)
        if point.movement:
            for key in MOVEMENT_METRICS:
                value = point.movement.get(key)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[f"mask.{key}"] = float(value)
            # where it moved: "mask.Q.differ_fraction", … (srcore.pruning.movement's by_type)
            for kind, group in (point.movement.get("by_type") or {}).items():
                value = group.get("differ_fraction") if isinstance(group, Mapping) else None
                if isinstance(value, int | float) and not isinstance(value, bool):
                    values[f"mask.{kind}.differ_fraction"] = float(value)
        collapsed = frozenset(
            name
            for name, metrics in point.metrics.items()
            if isinstance(metrics, Mapping) and metrics.get("collapsed")
        )
        self.add_entry(
            SeedEntry(
                point.seed,
                point.child,
                point.job,
                point.selected_step,
                point.mask_sha256,
                values,
                collapsed,
            )
        )

    def add_entry(self, entry: SeedEntry) -> None:
        self.seeds.append(entry.seed)
        for metric, value in entry.values.items():
            self.values.setdefault(metric, []).append(value)
        for name in entry.collapsed:
            self.collapsed[name] = self.collapsed.get(name, 0) + 1
        self.entries.append(entry)


MOVEMENT_METRICS = ("differ_fraction", "flipped_fraction")


@dataclass
class TableRow:
    label: str
    role: Role | Literal["magnitude"]
    setting: dict[str, Any]
    cells: dict[float, Cell] = field(default_factory=dict)  # sparsity (0.0: dense) → cell


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{set: {accuracy, heuristics: {h: {...}}}} → {"set.accuracy": …, "set.h.non_entailed": …}
    (numbers only; `n` and flags left out: `SetMetrics.numbers`)."""
    return {
        f"{name}.{key}": value
        for name, values in metrics.items()
        if isinstance(values, Mapping)
        for key, value in SetMetrics.model_validate(values).numbers().items()
    }


def study_table(children: Sequence[StudyChild], points: Iterable[SelectedPoint]) -> list[TableRow]:
    """Rows in study order: the searches, then per dense reference its dense model and its
    one-shot magnitude subnetworks. The dense points of a search are shown only where no
    reference holds its dense model (`own_dense_starts`), once per distinct dense model."""
    by_key = {c.key: c for c in children}
    own_dense = own_dense_starts(children)
    rows: dict[str, TableRow] = {}
    for child in children:
        if child.role == "reference":
            rows[f"{child.key}/dense"] = TableRow(child.label, "reference", child.setting)
            magnitude = child.label.replace("dense", "magnitude", 1)
            rows[f"{child.key}/magnitude"] = TableRow(magnitude, "magnitude", child.setting)
        else:
            if own_dense.get(child.key) == child.key:
                label = f"{child.label}: dense start"
                rows[f"{child.key}/dense"] = TableRow(label, "reference", child.setting)
            rows[child.key] = TableRow(child.label, "search", child.setting)
    for point in points:
        child = by_key.get(point.child)
        if child is None:
            continue
        if child.role == "reference":
            row = rows[f"{child.key}/{'dense' if point.kind == 'dense' else 'magnitude'}"]
        elif point.kind == "dense":
            if own_dense.get(child.key) != child.key:
                continue  # a reference (or an earlier search) holds this dense model
            row = rows[f"{child.key}/dense"]
        else:
            row = rows[child.key]
        cell = row.cells.setdefault(0.0 if point.kind == "dense" else point.sparsity, Cell())
        cell.add(point)
    return list(rows.values())


def own_dense_starts(children: Sequence[StudyChild]) -> dict[str, str]:
    """In a study with dense references: each search whose dense model no reference holds →
    the first search with that same dense model (the one whose table shows it). Without
    references, none: such a study compares searches only."""
    held = {dense_identity(c.spec) for c in children if c.role == "reference"}
    if not held:
        return {}
    first: dict[str, str] = {}
    found: dict[str, str] = {}
    for child in children:
        if child.role == "reference":
            continue
        identity = dense_identity(child.spec)
        if identity not in held:
            found[child.key] = first.setdefault(identity, child.key)
    return found


def points_from_result(
    child: str,
    result: SearchResult,
    job: str | None = None,
    mask_sha256: Mapping[tuple[int, float], str] | None = None,
) -> list[SelectedPoint]:
    """The selected points of one finished job (dense models and subnetworks). `job` names it
    (default: the child key); `mask_sha256`: (seed, sparsity) → the sha256 of that unit's
    mask file."""
    job = job if job is not None else child
    hashes = mask_sha256 or {}
    points = [
        SelectedPoint(
            child, "dense", d.seed, 0.0, d.metrics, job=job, selected_step=d.selected_step
        )
        for d in result.dense
    ]
    points += [
        SelectedPoint(
            child,
            "subnetwork",
            u.seed,
            u.sparsity,
            u.metrics,
            u.movement,
            job=job,
            selected_step=u.selected_step,
            mask_sha256=hashes.get((u.seed, u.sparsity)),
        )
        for u in result.units
    ]
    return points


CSV_COLUMNS = ("row", "role", "setting", "sparsity", "metric", "mean", "sd", "n", "collapsed")


def table_records(rows: Sequence[TableRow]) -> list[dict[str, Any]]:
    """Long format: one record per (row, sparsity, metric)."""
    records = []
    for row in rows:
        setting = json.dumps(row.setting, sort_keys=True)
        for sparsity in sorted(row.cells):
            cell = row.cells[sparsity]
            collapsed = sum(cell.collapsed.values())
            for metric in sorted(cell.values):
                stats = cell.stats(metric)
                assert stats is not None
                mean, sd, n = stats
                set_name = metric.split(".", 1)[0]
                records.append(
                    {
                        "row": row.label,
                        "role": row.role,
                        "setting": setting,
                        "sparsity": sparsity,
                        "metric": metric,
                        "mean": mean,
                        "sd": sd,
                        "n": n,
                        "collapsed": cell.collapsed.get(set_name, 0) if collapsed else 0,
                    }
                )
    return records


def table_csv(rows: Sequence[TableRow]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in table_records(rows):
        writer.writerow({**record, "mean": f"{record['mean']:.6f}", "sd": f"{record['sd']:.6f}"})
    return buffer.getvalue()


def read_table_csv(text: str) -> list[dict[str, Any]]:
    """The records of `table_csv` back, numbers as numbers."""
    records = []
    for raw in csv.DictReader(io.StringIO(text)):
        records.append(
            {
                **raw,
                "sparsity": float(raw["sparsity"]),
                "mean": float(raw["mean"]),
                "sd": float(raw["sd"]),
                "n": int(raw["n"]),
                "collapsed": int(raw["collapsed"]),
            }
        )
    return records


# --- per-seed records ------------------------------------------------------------------------

SEED_COLUMNS = (
    "row",
    "role",
    "child",
    "job",
    "seed",
    "sparsity",
    "metric",
    "value",
    "selected_step",
    "mask_sha256",
    "collapsed",
)


def seed_records(rows: Sequence[TableRow]) -> list[dict[str, Any]]:
    """One record per (row, sparsity, seed, metric): the value behind every mean, with the job
    it comes from, its selected step and its mask's sha256 (empty for a dense model)."""
    records = []
    for row in rows:
        for sparsity in sorted(row.cells):
            for entry in sorted(row.cells[sparsity].entries, key=lambda e: e.seed):
                for metric in sorted(entry.values):
                    records.append(
                        {
                            "row": row.label,
                            "role": row.role,
                            "child": entry.child,
                            "job": entry.job,
                            "seed": entry.seed,
                            "sparsity": sparsity,
                            "metric": metric,
                            "value": entry.values[metric],
                            "selected_step": entry.selected_step,
                            "mask_sha256": entry.mask_sha256,
                            "collapsed": int(metric.split(".", 1)[0] in entry.collapsed),
                        }
                    )
    return records


def seeds_csv(rows: Sequence[TableRow]) -> str:
    """`seed_records` as CSV (values with 6 decimals, empty cells for none)."""
    return records_csv(seed_records(rows), SEED_COLUMNS)


def records_csv(records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: _csv_value(record.get(k)) for k in columns})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.6f}"
    return value


def read_seeds_csv(text: str) -> list[dict[str, Any]]:
    """The records of `seeds_csv` back, numbers as numbers, empty cells as None."""
    records = []
    for raw in csv.DictReader(io.StringIO(text)):
        step, job, sha = raw["selected_step"], raw["job"], raw["mask_sha256"]
        records.append(
            {
                **raw,
                "job": job or None,
                "seed": int(raw["seed"]),
                "sparsity": float(raw["sparsity"]),
                "value": float(raw["value"]),
                "selected_step": int(step) if step else None,
                "mask_sha256": sha or None,
                "collapsed": int(raw["collapsed"]),
            }
        )
    return records
