"""Studies: creation and reads, their child jobs, the children's status counts and the
selected metric points the results table is built from."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from persistence.repositories.base import SubmittedRepository
from persistence.repositories.pagination import Page
from persistence.tables import Job, JobStatus, Metric, Study

# The stages whose selected points enter a study's table ("teacher", conf_reg's CE model, and
# the search curve of a retrained mask select nothing there).
TABLE_STAGES = ("dense", "search", "retrain")


class StudyRepository(SubmittedRepository[Study]):
    table = Study

    def create(
        self,
        *,
        owner_id: uuid.UUID,
        spec: dict[str, Any],
        children: list[dict[str, Any]],
        queue: str,
        name: str | None = None,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
    ) -> Study:
        """A new study row (its children are created with JobRepository.create). Flushes: a
        duplicate idempotency key raises IntegrityError here."""
        study = Study(
            id=uuid.uuid4(),
            owner_id=owner_id,
            name=name,
            spec=spec,
            children=children,
            queue=queue,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            created_at=self._clock(),
        )
        self._session.add(study)
        self._session.flush()
        return study

    def list(
        self, owner_id: uuid.UUID, *, limit: int = 20, cursor: str | None = None
    ) -> Page[Study]:
        """Newest first, keyset-paginated on (created_at, id) like the jobs."""
        return self.page(self.owned(owner_id), limit=limit, cursor=cursor)

    def count(self, owner_id: uuid.UUID) -> int:
        return self.count_owned(owner_id)

    def children(self, study_id: uuid.UUID) -> list[Job]:
        """The study's jobs, fresh from the database (their status moves)."""
        return list(
            self._session.scalars(
                select(Job)
                .where(Job.study_id == study_id)
                .order_by(Job.created_at, Job.id)
                .execution_options(populate_existing=True)
            )
        )

    def status_counts(
        self, study_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, dict[JobStatus, int]]:
        """Per study, how many of its children are in each status (zeros included)."""
        ids = list(study_ids)
        counts = {study_id: dict.fromkeys(JobStatus, 0) for study_id in ids}
        if not ids:
            return counts
        rows = self._session.execute(
            select(Job.study_id, Job.status, func.count())
            .where(Job.study_id.in_(ids))
            .group_by(Job.study_id, Job.status)
        )
        for study_id, status, n in rows:
            counts[study_id][JobStatus(status)] = int(n)
        return counts

    def selected_points(self, study_id: uuid.UUID) -> list[tuple[str, Metric]]:
        """(child key, metric) for the selected point of every table curve of every child."""
        rows = self._session.execute(
            select(Job.study_key, Metric)
            .join(Metric, Metric.job_id == Job.id)
            .where(
                Job.study_id == study_id,
                Metric.selected.is_(True),
                Metric.stage.in_(TABLE_STAGES),
            )
            .order_by(Metric.id)
        )
        return [(str(key), metric) for key, metric in rows if key is not None]
