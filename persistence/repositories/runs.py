"""The runs table's reads: the selected metric points of an owner's jobs (plain jobs and study
children alike) with the job and its study's name, newest jobs first."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from persistence.repositories.studies import TABLE_STAGES
from persistence.tables import Job, Metric, Study


@dataclass(frozen=True)
class RunPoint:
    """One selected evaluation of one job, with what the runs table shows beside it."""

    job: Job
    study_name: str | None
    metric: Metric


class RunRepository:
    def __init__(self, session: Session):
        self._session = session

    def selected_points(
        self,
        owner_id: uuid.UUID,
        *,
        study_id: uuid.UUID | None = None,
        max_jobs: int = 1000,
    ) -> list[RunPoint]:
        """The selected point of every table curve (dense, search, retrain) of the owner's
        newest `max_jobs` jobs that have one; jobs newest first, points in recording order."""
        with_points = (
            select(Job.id)
            .where(Job.owner_id == owner_id)
            .where(
                select(Metric.id)
                .where(
                    Metric.job_id == Job.id,
                    Metric.selected.is_(True),
                    Metric.stage.in_(TABLE_STAGES),
                )
                .exists()
            )
        )
        if study_id is not None:
            with_points = with_points.where(Job.study_id == study_id)
        newest = with_points.order_by(Job.created_at.desc(), Job.id.desc()).limit(max_jobs)
        rows = self._session.execute(
            select(Job, Study.name, Metric)
            .join(Metric, Metric.job_id == Job.id)
            .outerjoin(Study, Study.id == Job.study_id)
            .where(
                Job.id.in_(newest.scalar_subquery()),
                Metric.selected.is_(True),
                Metric.stage.in_(TABLE_STAGES),
            )
            .order_by(Job.created_at.desc(), Job.id.desc(), Metric.id)
        )
        return [RunPoint(job, name, metric) for job, name, metric in rows]

    def count_jobs_with_points(self, owner_id: uuid.UUID) -> int:
        """How many of the owner's jobs have a selected table point (to say when the table was
        cut at `max_jobs`)."""
        query = (
            select(func.count(func.distinct(Metric.job_id)))
            .join(Job, Job.id == Metric.job_id)
            .where(
                Job.owner_id == owner_id,
                Metric.selected.is_(True),
                Metric.stage.in_(TABLE_STAGES),
            )
        )
        return int(self._session.scalar(query) or 0)
