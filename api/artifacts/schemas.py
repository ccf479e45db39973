"""Response bodies of the artifacts domain."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from persistence.tables import ArtifactKind


class ArtifactPublic(BaseModel):
    id: uuid.UUID
    name: str
    kind: ArtifactKind
    content_type: str
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hex SHA-256 of the bytes; also the download's ETag")
    seed: int | None
    sparsity: float | None
    created_at: datetime
    download_url: str


class ArtifactList(BaseModel):
    data: list[ArtifactPublic]
    count: int
