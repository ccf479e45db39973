"""A job's metric curves as the service serves them, and flat rows for a DataFrame."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from srnet.client.models import Job


@dataclass(frozen=True)
class MetricPoint:
    id: int
    stage: str
    step: int
    seed: int | None
    sparsity: float | None
    selected: bool
    payload: dict[str, Any]  # the evaluation as recorded (one flat object)
    # The service's typed reading of the payload (its OpenAPI `Evaluation`): {"sets": {name:
    # metrics}, "selection", "sparsity", "train_loss", "movement", "extras"}.
    evaluation: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricPoint:
        return cls(
            id=int(data["id"]),
            stage=str(data["stage"]),
            step=int(data["step"]),
            seed=data.get("seed"),
            sparsity=data.get("sparsity"),
            selected=bool(data.get("selected")),
            payload=dict(data.get("payload") or {}),
            evaluation=dict(data.get("evaluation") or {}),
        )

    def eval_sets(self) -> dict[str, dict[str, Any]]:
        """The evaluated sets of this point ({"dev": {...}, "hans": {...}}), as the service
        typed them (`evaluation.sets`). A service older than that sends no `evaluation`: then
        every payload entry that is a dict with a numeric accuracy (or F1)."""
        if "sets" in self.evaluation:
            return {name: dict(values) for name, values in self.evaluation["sets"].items()}
        return {
            name: value
            for name, value in self.payload.items()
            if isinstance(value, dict)
            and name != "movement"
            and any(isinstance(value.get(k), int | float) for k in ("accuracy", "f1"))
        }

    @property
    def effective_sparsity(self) -> float | None:
        """The row's sparsity, else the one the evaluation reports; dense points are 0."""
        if self.sparsity is not None:
            return self.sparsity
        value = self.evaluation.get("sparsity", self.payload.get("sparsity"))
        if isinstance(value, int | float):
            return float(value)
        return 0.0 if self.stage == "dense" else None


@dataclass(frozen=True)
class MetricCurve:
    stage: str
    seed: int | None
    sparsity: float | None
    points: list[MetricPoint]
    selected: MetricPoint | None


@dataclass(frozen=True)
class Metrics:
    job_id: str
    curves: list[MetricCurve]
    selected: list[MetricPoint]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        curves = [
            MetricCurve(
                stage=str(c["stage"]),
                seed=c.get("seed"),
                sparsity=c.get("sparsity"),
                points=[MetricPoint.from_json(p) for p in c.get("points", [])],
                selected=MetricPoint.from_json(c["selected"]) if c.get("selected") else None,
            )
            for c in data.get("curves", [])
        ]
        return cls(
            job_id=str(data.get("job_id", "")),
            curves=curves,
            selected=[MetricPoint.from_json(p) for p in data.get("selected", [])],
        )


def flatten_payload(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"hans": {"accuracy": .6, "heuristics": {"lexical_overlap": {...}}}} →
    {"hans.accuracy": .6, "hans.heuristics.lexical_overlap.entailed": …}: numbers, strings and
    flags as they are, nested dicts joined by ".", lists left out."""
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_payload(value, f"{name}."))
        elif isinstance(value, str | int | float | bool) or value is None:
            flat[name] = value
    return flat


def metric_rows(
    metrics: Metrics, *, selected_only: bool = False, job: Job | None = None
) -> builtins.list[dict[str, Any]]:
    """One flat dict per evaluation, for `pandas.DataFrame(rows)` (no pandas needed here):
    job_id, stage, seed, sparsity (the effective one; dense 0), step, selected, then every
    metric of the payload flattened (`dev.accuracy`, `hans.non_entailed`, `train_loss`, …).
    With `job`, its name, loss and method ride along on every row."""
    extra: dict[str, Any] = {}
    if job is not None:
        spec = job.spec or {}
        extra = {
            "job_name": job.name,
            "task": spec.get("task"),
            "loss": (spec.get("debias") or {}).get("loss"),
            "method": (spec.get("pruning") or {}).get("method"),
        }
    points = metrics.selected if selected_only else [p for c in metrics.curves for p in c.points]
    return [
        {
            "job_id": metrics.job_id,
            **extra,
            "stage": point.stage,
            "seed": point.seed,
            "sparsity": point.effective_sparsity,
            "step": point.step,
            "selected": point.selected,
            **flatten_payload(point.payload),
        }
        for point in points
    ]
