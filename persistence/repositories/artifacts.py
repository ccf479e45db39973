"""Artifact records: stored objects (by key) or inline bytes (bit-packed masks)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from persistence.repositories.base import Clock
from persistence.repositories.events import JobEventRepository
from persistence.tables import Artifact, ArtifactKind, EventKind, utcnow


class ArtifactRepository:
    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def add(
        self,
        job_id: uuid.UUID,
        *,
        kind: ArtifactKind,
        name: str,
        size: int,
        sha256: str,
        storage_key: str | None = None,
        data: bytes | None = None,
        content_type: str = "application/octet-stream",
        seed: int | None = None,
        sparsity: float | None = None,
        artifact_id: uuid.UUID | None = None,
    ) -> Artifact:
        """Record a stored artifact (give `storage_key` from the ArtifactStore) or an inline one
        (`data`, for bit-packed masks). Records an `artifact` event."""
        if (storage_key is None) == (data is None):
            raise ValueError("give exactly one of storage_key or data")
        if data is not None and len(data) != size:
            raise ValueError("size does not match the inline data")
        artifact = Artifact(
            id=artifact_id or uuid.uuid4(),
            job_id=job_id,
            kind=kind.value,
            name=name,
            size=size,
            sha256=sha256,
            storage_key=storage_key,
            data=data,
            content_type=content_type,
            seed=seed,
            sparsity=sparsity,
            created_at=self._clock(),
        )
        self._session.add(artifact)
        self._session.flush()
        JobEventRepository(self._session, self._clock).add(
            job_id,
            EventKind.artifact,
            message=f"{kind.value} {name} stored",
            data={"artifact_id": str(artifact.id), "kind": kind.value, "name": name},
        )
        return artifact

    def list(self, job_id: uuid.UUID) -> Sequence[Artifact]:
        # Inline bytes are not needed for a listing.
        return list(
            self._session.scalars(
                select(Artifact)
                .options(defer(Artifact.data))
                .where(Artifact.job_id == job_id)
                .order_by(Artifact.created_at, Artifact.name)
            )
        )

    def get(self, job_id: uuid.UUID, artifact_id: uuid.UUID) -> Artifact | None:
        return self._session.scalar(
            select(Artifact)
            .options(defer(Artifact.data))
            .where(Artifact.id == artifact_id, Artifact.job_id == job_id)
        )

    def read_inline(self, artifact_id: uuid.UUID) -> bytes | None:
        return self._session.scalar(select(Artifact.data).where(Artifact.id == artifact_id))
