"""Artifact listing and downloads (streamed from the store, ETag, Range, 304/206/416)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response
from fastapi.responses import StreamingResponse

from api.artifacts import service
from api.artifacts.schemas import ArtifactList, ArtifactPublic
from api.deps import ArtifactStoreDep, OwnedJob, SessionDep, SettingsDep, parse_uuid
from api.errors import ArtifactNotFound, JobNotFound, RangeNotSatisfiable, Unauthorized, responses
from persistence.repositories import ArtifactRepository

router = APIRouter(prefix="/jobs/{job_id}/artifacts", tags=["artifacts"])


@router.get(
    "",
    response_model=ArtifactList,
    summary="The job's artifacts: masks, checkpoint archives, report, plot",
    description=(
        "What the worker stored so far: a bit-packed mask and a checkpoint archive per seed and"
        " sparsity, the metrics report and its plot, each with size, sha256 and its download "
        "URL."
    ),
    responses=responses(Unauthorized, JobNotFound),
)
def list_artifacts(request: Request, job: OwnedJob, session: SessionDep) -> ArtifactList:
    items = [
        ArtifactPublic(
            id=a.id,
            name=a.name,
            kind=a.kind,
            content_type=a.content_type,
            size=a.size,
            sha256=a.sha256,
            seed=a.seed,
            sparsity=a.sparsity,
            created_at=a.created_at,
            download_url=str(
                request.url_for("download_artifact", job_id=str(job.id), artifact_id=str(a.id))
            ),
        )
        for a in ArtifactRepository(session).list(job.id)
    ]
    return ArtifactList(data=items, count=len(items))


@router.get(
    "/{artifact_id}",
    name="download_artifact",
    summary="Download an artifact (honours If-None-Match and a single bytes Range)",
    description=(
        "Streams the bytes from the artifact store. `ETag` is the sha256 (`If-None-Match` "
        "answers 304); a single `bytes=` Range answers 206 with `Content-Range` (416 when it "
        "does not fit), so a broken download can continue."
    ),
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes"},
        206: {"description": "The requested range (Content-Range)"},
        304: {"description": "Not modified (If-None-Match matched the ETag)"},
        **responses(Unauthorized, JobNotFound, ArtifactNotFound, RangeNotSatisfiable),
    },
)
def download_artifact(
    job: OwnedJob,
    session: SessionDep,
    store: ArtifactStoreDep,
    settings: SettingsDep,
    artifact_id: Annotated[str, Path(max_length=64, description="Artifact id (UUID)")],
    range_header: Annotated[str | None, Header(alias="Range", max_length=200)] = None,
    if_none_match: Annotated[str | None, Header(alias="If-None-Match", max_length=1000)] = None,
    if_range: Annotated[str | None, Header(alias="If-Range", max_length=200)] = None,
) -> Response:
    artifact = service.find_artifact(session, job.id, parse_uuid(artifact_id))
    etag = service.etag_of(artifact)
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-Checksum-SHA256": artifact.sha256,
    }
    if service.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    # If-Range: serve the range only if the client's copy is this one; otherwise all of it.
    byte_range = None
    if if_range is None or if_range.strip() == etag:
        byte_range = service.parse_range(range_header, artifact.size)
    chunks = service.open_bytes(
        session, store, artifact, byte_range, chunk_size=settings.download_chunk_bytes
    )
    # A large download may take minutes: no database connection is needed while it streams.
    session.close()
    headers["Content-Disposition"] = service.content_disposition(artifact.name)
    if byte_range is None:
        headers["Content-Length"] = str(artifact.size)
        status_code = 200
    else:
        headers["Content-Length"] = str(byte_range.length)
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{artifact.size}"
        status_code = 206
    return StreamingResponse(
        chunks, status_code=status_code, media_type=artifact.content_type, headers=headers
    )
