"""Metric points of a job's curves and the selected point of each curve."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from persistence.repositories.base import Clock
from persistence.tables import Metric, utcnow


class MetricRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def add(
        self,
        job_id: uuid.UUID,
        *,
        stage: str,
        step: int,
        payload: dict[str, Any],
        seed: int | None = None,
        sparsity: float | None = None,
        selected: bool = False,
    ) -> Metric:
        metric = Metric(
            job_id=job_id,
            at=self._clock(),
            stage=stage,
            step=step,
            seed=seed,
            sparsity=sparsity,
            payload=payload,
            selected=selected,
        )
        self._session.add(metric)
        self._session.flush()
        if selected:
            self.select(metric.id)
        return metric

    def select(self, metric_id: int) -> Metric:
        """Mark one point as the selected one of its (job, stage, seed, sparsity) curve."""
        metric = self._session.get(Metric, metric_id)
        if metric is None:
            raise LookupError(f"metric {metric_id} does not exist")
        same_curve = [
            Metric.job_id == metric.job_id,
            Metric.stage == metric.stage,
            Metric.seed.is_(None) if metric.seed is None else Metric.seed == metric.seed,
            Metric.sparsity.is_(None)
            if metric.sparsity is None
            else Metric.sparsity == metric.sparsity,
        ]
        self._session.execute(
            update(Metric)
            .where(*same_curve, Metric.id != metric_id)
            .values(selected=False)
            .execution_options(synchronize_session="fetch")
        )
        metric.selected = True
        self._session.flush()
        return metric

    def merge_payload(self, metric_id: int, extra: dict[str, Any]) -> Metric:
        """Add keys to one point's payload (a new dict: JSON columns track reassignment)."""
        metric = self._session.get(Metric, metric_id)
        if metric is None:
            raise LookupError(f"metric {metric_id} does not exist")
        metric.payload = {**metric.payload, **extra}
        self._session.flush()
        return metric

    def list(self, job_id: uuid.UUID, *, limit: int = 20_000) -> list[Metric]:
        return list(
            self._session.scalars(
                select(Metric).where(Metric.job_id == job_id).order_by(Metric.id).limit(limit)
            )
        )
