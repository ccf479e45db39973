"""A study's results table: the selected point of every child job, per row and sparsity, as
mean ± sd (n) over seeds; torch-free (the API builds it from the database).

Rows in study order: the searches, then per dense reference its dense model and its one-shot
magnitude subnetworks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

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


@dataclass
class Cell:
    """Mean ± sd over seeds of every metric of one (row, sparsity)."""

    values: dict[str, list[float]] = field(default_factory=dict)
    collapsed: dict[str, int] = field(default_factory=dict)  # set → seeds that collapsed
    seeds: list[int] = field(default_factory=list)

    def stats(self, metric: str) -> tuple[float, float, int] | None:
        values = self.values.get(metric)
        if not values:
            return None
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), sd, len(values)


@dataclass
class TableRow:
    label: str
    role: Role | Literal["magnitude"]
    setting: dict[str, Any]
    cells: dict[float, Cell] = field(default_factory=dict)  # sparsity (0.0: dense) → cell


def flatten_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """{set: {accuracy, heuristics: {h: {...}}}} → {"set.accuracy": …, "set.h.non_entailed": …}
    (numbers only; `n` and flags left out)."""
    flat: dict[str, float] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                if key in ("n", "majority_share", "collapsed", "majority_label"):
                    continue
                # heuristics/per_class nest one level: "hans.lexical_overlap.non_entailed"
                walk(prefix if key in ("heuristics", "per_class") else f"{prefix}.{key}", value)
        elif isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
            flat[prefix] = float(node)

    for set_name, values in metrics.items():
        if isinstance(values, Mapping):
            walk(set_name, values)
    return flat


def study_table(children: Sequence[StudyChild], points: Iterable[SelectedPoint]) -> list[TableRow]:
    """Rows in study order: the searches, then per dense reference its dense model and its
    one-shot magnitude subnetworks; dense points of search jobs are not repeated."""
    by_key = {c.key: c for c in children}
    rows: dict[str, TableRow] = {}
    for child in children:
        if child.role == "reference":
            rows[f"{child.key}/dense"] = TableRow(child.label, "reference", child.setting)
            magnitude = child.label.replace("dense", "magnitude", 1)
            rows[f"{child.key}/magnitude"] = TableRow(magnitude, "magnitude", child.setting)
        else:
            rows[child.key] = TableRow(child.label, "search", child.setting)
    for point in points:
        child = by_key.get(point.child)
        if child is None:
            continue
        if child.role == "reference":
            row = rows[f"{child.key}/{'dense' if point.kind == 'dense' else 'magnitude'}"]
        elif point.kind == "dense":
            continue  # the references hold the dense models
        else:
            row = rows[child.key]
        cell = row.cells.setdefault(0.0 if point.kind == "dense" else point.sparsity, Cell())
        cell.seeds.append(point.seed)
        for metric, value in flatten_metrics(point.metrics).items():
            cell.values.setdefault(metric, []).append(value)
        for set_name, values in point.metrics.items():
            if isinstance(values, Mapping) and values.get("collapsed"):
                cell.collapsed[set_name] = cell.collapsed.get(set_name, 0) + 1
        if point.movement:
            for key in ("differ_fraction", "flipped_fraction"):
                value = point.movement.get(key)
                if isinstance(value, int | float):
                    cell.values.setdefault(f"mask.{key}", []).append(float(value))
    return list(rows.values())


def points_from_report(child: str, report: Mapping[str, Any]) -> list[SelectedPoint]:
    """The selected points of one job's metrics.json (dense models and subnetworks)."""
    points = [
        SelectedPoint(child, "dense", int(d["seed"]), 0.0, d["metrics"])
        for d in report.get("dense", [])
    ]
    points += [
        SelectedPoint(
            child,
            "subnetwork",
            int(u["seed"]),
            float(u["sparsity"]),
            u["metrics"],
            u.get("movement"),
        )
        for u in report.get("results", [])
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
