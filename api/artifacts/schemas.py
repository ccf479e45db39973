"""Response bodies of the artifacts domain."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from persistence.tables import ArtifactKind


class ArtifactPublic(BaseModel):
    id: uuid.UUID = Field(description="The artifact's id (the last part of its download URL)")
    name: str = Field(description="File name, carrying the job's slugged name and short id")
    kind: ArtifactKind = Field(
        description="mask (bit-packed safetensors), checkpoint (a tar of a save_pretrained "
        "folder), onnx (a tar of the ONNX model folder, jobs with export.onnx), report "
        "(metrics JSON) or plot (PNG)"
    )
    content_type: str = Field(description="Media type of the download")
    size: int = Field(description="Bytes")
    sha256: str = Field(description="Hex SHA-256 of the bytes; also the download's ETag")
    seed: int | None = Field(
        description="The seed it belongs to; null for the job's report and plot"
    )
    sparsity: float | None = Field(
        description="The sparsity it belongs to (masks, checkpoints, ONNX models); null otherwise"
    )
    created_at: datetime = Field(description="When the worker stored it")
    download_url: str = Field(
        description="GET it with the same API key; ETag, If-None-Match and Range honoured"
    )


class ArtifactList(BaseModel):
    data: list[ArtifactPublic] = Field(description="Every artifact of the job")
    count: int = Field(description="Number of artifacts")
