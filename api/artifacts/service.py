"""Artifact downloads: conditional requests (ETag = sha256), byte ranges, safe file names."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy.orm import Session

from api.errors import ArtifactNotFound, RangeNotSatisfiable
from persistence.artifacts import ArtifactMissing, ArtifactStore, InvalidKey
from persistence.repositories import ArtifactRepository
from persistence.tables import Artifact

_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def etag_of(artifact: Artifact) -> str:
    return f'"{artifact.sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match: a list of entity tags or `*`; weak tags compare equal (RFC 9110 13.1.2)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    candidates = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return etag in candidates


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of a `Range: bytes=...` header; None to send the whole body.

    Only single ranges are served (a client asking for several gets the whole body, which the
    RFC allows). A malformed or unsatisfiable bytes range raises RangeNotSatisfiable (416).
    """
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None  # unknown unit: ignore the header
    if "," in spec:
        return None
    match = _RANGE.match(spec)
    if not match or (match.group(1) == "" and match.group(2) == ""):
        raise RangeNotSatisfiable(size, "malformed Range header")
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        raise RangeNotSatisfiable(size, "range ends before it starts")
    if start >= size:
        raise RangeNotSatisfiable(size)
    return ByteRange(start, end)


def safe_filename(name: str) -> str:
    """An ASCII file name with no path: letters, digits, '.', '_' and '-' only."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    ascii_name = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", ascii_name).strip("._") or "artifact"
    return cleaned[:200]


def content_disposition(name: str) -> str:
    fallback = safe_filename(name)
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}"


def find_artifact(session: Session, job_id, artifact_id) -> Artifact:
    artifact = ArtifactRepository(session).get(job_id, artifact_id) if artifact_id else None
    if artifact is None:
        raise ArtifactNotFound()
    return artifact


def open_bytes(
    session: Session,
    store: ArtifactStore,
    artifact: Artifact,
    byte_range: ByteRange | None,
    chunk_size: int,
) -> Iterator[bytes]:
    """The artifact's bytes (or the range of them), from the row or the store. Fails before the
    response starts if the store lost the object."""
    start = 0 if byte_range is None else byte_range.start
    end = artifact.size - 1 if byte_range is None else byte_range.end
    if artifact.storage_key is None:
        data = ArtifactRepository(session).read_inline(artifact.id) or b""
        piece = data[start : end + 1]
        return iter([piece[i : i + chunk_size] for i in range(0, len(piece), chunk_size)])
    if artifact.size == 0:
        return iter(())
    try:
        return store.open_range(artifact.storage_key, start, end, chunk_size)
    except (ArtifactMissing, InvalidKey) as exc:
        raise ArtifactNotFound("the artifact's bytes are missing from the store") from exc
