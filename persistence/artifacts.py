"""Where artifact bytes live: a local folder (one machine) or an S3-compatible bucket.

Keys are made by `artifact_key()` from ids we generated, never from user input, and every store
checks them again, so a crafted name can never reach outside the store. Writes are atomic: a
reader sees the whole object or none (a cancelled job leaves no half-written artifact).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from persistence.settings import SharedSettings

CHUNK = 1024 * 1024
# Segments start with a letter or digit, so "." and ".." (and hidden files) cannot appear.
_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,7}")
_SUFFIX_RE = re.compile(r"(\.[a-z0-9]{1,16}){0,2}")


class InvalidKey(ValueError):
    pass


class ArtifactMissing(KeyError):
    pass


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def check_key(key: str) -> str:
    if not _KEY_RE.fullmatch(key):
        raise InvalidKey(f"invalid artifact key {key!r}")
    return key


def artifact_key(job_id: uuid.UUID, artifact_id: uuid.UUID, suffix: str = "") -> str:
    """The storage key of an artifact: `jobs/<job uuid>/<artifact uuid><suffix>`, e.g.
    suffix ".tar" for a checkpoint archive. Give the same artifact_id to ArtifactRepository.add."""
    if not _SUFFIX_RE.fullmatch(suffix):
        raise InvalidKey(f"invalid suffix {suffix!r}")
    return f"jobs/{uuid.UUID(str(job_id))}/{uuid.UUID(str(artifact_id))}{suffix}"


def sha256_of_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


@runtime_checkable
class ArtifactStore(Protocol):
    """Byte storage for artifacts. Ranges are inclusive byte offsets, as in HTTP."""

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject: ...

    def put_file(self, key: str, path: Path) -> StoredObject: ...

    def put_bytes(self, key: str, data: bytes) -> StoredObject: ...

    def open_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        """Bytes start..end (inclusive; None: to the end) in chunks. ArtifactMissing if absent;
        raised at the call, before the first chunk is asked for."""
        ...

    def size(self, key: str) -> int: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


class LocalArtifactStore:
    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # belt and braces after check_key
            raise InvalidKey(f"invalid artifact key {key!r}")
        return path

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        self._fsync_dir(path.parent)
        return StoredObject(key=key, size=size, sha256=digest.hexdigest())

    @staticmethod
    def _fsync_dir(folder: Path) -> None:
        with contextlib.suppress(OSError):  # not every file system allows it
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def put_file(self, key: str, path: Path) -> StoredObject:
        with open(path, "rb") as handle:
            return self.put_stream(key, iter(lambda: handle.read(CHUNK), b""))

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        return self.put_stream(key, [data])

    def open_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        try:
            handle: BinaryIO = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError as exc:
            raise ArtifactMissing(key) from exc
        return self._read(handle, start, end, chunk_size)

    @staticmethod
    def _read(handle: BinaryIO, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                want = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = handle.read(want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ArtifactMissing(key) from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


class S3ArtifactStore:
    """An S3-compatible bucket through boto3 (`pip install 'srnet[s3]'`). Objects appear whole
    when their upload completes, which gives atomic writes for free."""

    MULTIPART_THRESHOLD = 64 * 1024 * 1024

    def __init__(self, bucket: str, prefix: str = "", client: Any | None = None, **client_kwargs):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if client is None:
            import boto3  # optional extra: only S3 deployments need it

            client = boto3.client("s3", **client_kwargs)
        self.client = client

    @classmethod
    def from_settings(cls, settings: SharedSettings) -> S3ArtifactStore:
        parsed = urlsplit(settings.artifact_store)
        kwargs: dict[str, Any] = {}
        if settings.s3_endpoint_url:
            kwargs["endpoint_url"] = settings.s3_endpoint_url
        if settings.s3_region:
            kwargs["region_name"] = settings.s3_region
        if settings.s3_access_key_id and settings.s3_secret_access_key:
            kwargs["aws_access_key_id"] = settings.s3_access_key_id
            kwargs["aws_secret_access_key"] = settings.s3_secret_access_key.get_secret_value()
        if settings.s3_addressing_style != "auto":
            from botocore.config import Config

            kwargs["config"] = Config(s3={"addressing_style": settings.s3_addressing_style})
        return cls(parsed.netloc, parsed.path, **kwargs)

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _is_missing(self, exc: Exception) -> bool:
        response = getattr(exc, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> StoredObject:
        # The sha256 and size must be known before the upload: spool to a temporary file.
        with tempfile.TemporaryDirectory(prefix="srnet-s3-") as folder:
            spool = Path(folder) / "object"
            with open(spool, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
            return self.put_file(key, spool)

    def put_file(self, key: str, path: Path) -> StoredObject:
        size, sha256 = sha256_of_file(path)
        object_key = self._object_key(key)
        metadata = {"sha256": sha256}
        if size < self.MULTIPART_THRESHOLD:
            with open(path, "rb") as handle:
                self.client.put_object(
                    Bucket=self.bucket, Key=object_key, Body=handle.read(), Metadata=metadata
                )
        else:
            self.client.upload_file(
                str(path), self.bucket, object_key, ExtraArgs={"Metadata": metadata}
            )
        return StoredObject(key=key, size=size, sha256=sha256)

    def put_bytes(self, key: str, data: bytes) -> StoredObject:
        sha256 = hashlib.sha256(data).hexdigest()
        self.client.put_object(
            Bucket=self.bucket, Key=self._object_key(key), Body=data, Metadata={"sha256": sha256}
        )
        return StoredObject(key=key, size=len(data), sha256=sha256)

    def open_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._object_key(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        try:
            response = self.client.get_object(**kwargs)
        except Exception as exc:
            if self._is_missing(exc):
                raise ArtifactMissing(key) from exc
            raise
        return self._iterate(response["Body"], chunk_size)

    @staticmethod
    def _iterate(body: Any, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def size(self, key: str) -> int:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except Exception as exc:
            if self._is_missing(exc):
                raise ArtifactMissing(key) from exc
            raise
        return int(head["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ArtifactMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))


def make_artifact_store(settings: SharedSettings) -> ArtifactStore:
    """The store SRNET_ARTIFACT_STORE names: file://<folder> (relative to the working directory when
    it starts with ./) or s3://<bucket>[/<prefix>]."""
    parsed = urlsplit(settings.artifact_store)
    if parsed.scheme == "s3":
        return S3ArtifactStore.from_settings(settings)
    # file://./var/artifacts -> netloc "." + path "/var/artifacts"; file:///abs -> path "/abs"
    raw = settings.artifact_store[len("file://") :]
    return LocalArtifactStore(Path(raw).expanduser())
