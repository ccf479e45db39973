"""The S3 artifact store against a real S3-compatible server on loopback: moto's standalone
server (`moto[server]`, the dev extra) in its own process, spoken to over HTTP by boto3 exactly
as a deployment speaks to AWS, MinIO or R2 (SRNET_S3_ENDPOINT_URL, path-style addressing).
Multipart upload of a checkpoint archive over 100 MB, Range downloads, sha256 checks."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistence.artifacts import ArtifactMissing, S3ArtifactStore, make_artifact_store
from persistence.settings import Settings

pytest.importorskip("moto.server", reason="moto[server] is in the dev extra")

BUCKET = "srnet-artifacts"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def store(endpoint: str) -> S3ArtifactStore:
    """Made the way the service makes it: from the settings a MinIO-style deployment sets."""
    settings = Settings(
        _env_file=None,
        artifact_store=f"s3://{BUCKET}/lab-a",
        s3_endpoint_url=endpoint,
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        s3_addressing_style="path",
    )
    s3 = make_artifact_store(settings)
    assert isinstance(s3, S3ArtifactStore)
    s3.client.create_bucket(Bucket=BUCKET)
    return s3


def _sha256(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _checkpoint_archive(tmp_path: Path, weights_mb: int) -> Path:
    """A checkpoint archive as the worker uploads it: a tar of a model directory whose weights
    file is `weights_mb` MB (sparse on disk, mostly zeros, a marker at each end)."""
    model = tmp_path / "checkpoint"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}')
    weights = model / "model.safetensors"
    with open(weights, "wb") as handle:
        handle.write(b"HEAD" * 256)
        handle.truncate(weights_mb * 1024 * 1024)
        handle.seek(-4, 2)
        handle.write(b"TAIL")
    archive = tmp_path / "checkpoint.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(model, arcname="checkpoint")
    return archive


def test_a_checkpoint_archive_over_100_mb_goes_up_in_parts_and_comes_back_by_ranges(
    store: S3ArtifactStore, tmp_path: Path
):
    archive = _checkpoint_archive(tmp_path, 105)
    size = archive.stat().st_size
    assert size > 100 * 1024 * 1024 > store.MULTIPART_THRESHOLD
    expected = hashlib.sha256(archive.read_bytes()).hexdigest()

    stored = store.put_file("jobs/j1/checkpoint.tar", archive)
    assert stored.size == size and stored.sha256 == expected

    object_key = "lab-a/jobs/j1/checkpoint.tar"
    head = store.client.head_object(Bucket=BUCKET, Key=object_key)
    assert head["ContentLength"] == size
    assert head["Metadata"]["sha256"] == expected  # the digest travels with the object
    # A multipart object's ETag is "<md5 of the part md5s>-<parts>": it was sent in parts.
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])
    assert parts >= 2
    assert store.size("jobs/j1/checkpoint.tar") == size

    # The whole object, read back in chunks, has the recorded sha256.
    assert _sha256(store.open_range("jobs/j1/checkpoint.tar")) == expected

    # Ranges (inclusive, as HTTP): the first bytes, a middle slice, the tail, open-ended.
    with open(archive, "rb") as handle:

        def local(start: int, end: int) -> bytes:
            handle.seek(start)
            return handle.read(end - start + 1)

        for start, end in [(0, 1023), (size // 2, size // 2 + 65_535), (size - 1024, size - 1)]:
            got = b"".join(store.open_range("jobs/j1/checkpoint.tar", start, end))
            assert got == local(start, end), (start, end)
        tail = b"".join(store.open_range("jobs/j1/checkpoint.tar", size - 2048))
        assert tail == local(size - 2048, size - 1)
    with tarfile.open(fileobj=_Chunks(store.open_range("jobs/j1/checkpoint.tar")), mode="r|") as t:
        names = [member.name for member in t]
    assert "checkpoint/model.safetensors" in names


class _Chunks:
    """A readable stream over an iterator of byte chunks (tarfile's stream mode)."""

    def __init__(self, chunks):
        self._chunks, self._buffer = iter(chunks), b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if n < 0:
            n = len(self._buffer)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def test_small_objects_streams_missing_keys_and_delete(store: S3ArtifactStore):
    data = b"mask bits " * 1000
    stored = store.put_bytes("jobs/j2/mask.safetensors", data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(store.open_range("jobs/j2/mask.safetensors", 5, 14)) == data[5:15]
    streamed = store.put_stream("jobs/j2/report.json", iter([b'{"a":', b" 1}"]))
    assert streamed.size == 8 and b"".join(store.open_range("jobs/j2/report.json")) == b'{"a": 1}'
    assert store.exists("jobs/j2/mask.safetensors")
    store.delete("jobs/j2/mask.safetensors")
    assert not store.exists("jobs/j2/mask.safetensors")
    with pytest.raises(ArtifactMissing):
        list(store.open_range("jobs/j2/mask.safetensors"))
    with pytest.raises(ArtifactMissing):
        store.size("jobs/nothing")
