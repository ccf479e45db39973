import hashlib
import io
import uuid
from pathlib import Path

import pytest

from persistence.artifacts import (
    ArtifactMissing,
    InvalidKey,
    LocalArtifactStore,
    S3ArtifactStore,
    artifact_key,
    make_artifact_store,
)
from persistence.settings import Settings

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def test_put_and_read_ranges(store, tmp_path):
    key = artifact_key(uuid.uuid4(), uuid.uuid4(), ".tar")
    stored = store.put_bytes(key, DATA)
    assert stored.size == len(DATA)
    assert stored.sha256 == hashlib.sha256(DATA).hexdigest()
    assert b"".join(store.open_range(key)) == DATA
    assert b"".join(store.open_range(key, 100, 199, chunk_size=7)) == DATA[100:200]
    assert b"".join(store.open_range(key, 10_000)) == DATA[10_000:]
    assert store.size(key) == len(DATA) and store.exists(key)
    source = tmp_path / "ckpt.tar"
    source.write_bytes(DATA[:999])
    again = store.put_file(key, source)  # replaces atomically
    assert again.size == 999 and b"".join(store.open_range(key)) == DATA[:999]
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(ArtifactMissing):
        store.open_range(key)


def test_failed_write_leaves_nothing(store):
    key = artifact_key(uuid.uuid4(), uuid.uuid4(), ".tar")
    store.put_bytes(key, b"old")

    def chunks():
        yield b"partial"
        raise RuntimeError("worker cancelled mid-upload")

    with pytest.raises(RuntimeError):
        store.put_stream(key, chunks())
    assert b"".join(store.open_range(key)) == b"old"
    folder = (store.root / key).parent
    assert [p.name for p in folder.iterdir()] == [Path(key).name]  # no temporary left


@pytest.mark.parametrize(
    "key",
    [
        "../escape",
        "jobs/../../etc/passwd",
        "/etc/passwd",
        "jobs/.hidden",
        "a//b",
        "",
        "jobs/x\\..\\y",
        "jobs/%2e%2e/x",
    ],
)
def test_keys_that_could_escape_are_refused(store, key):
    with pytest.raises(InvalidKey):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        store.open_range(key)


def test_artifact_key_only_from_ids():
    job_id, artifact_id = uuid.uuid4(), uuid.uuid4()
    assert artifact_key(job_id, artifact_id, ".tar") == f"jobs/{job_id}/{artifact_id}.tar"
    with pytest.raises(InvalidKey):
        artifact_key(job_id, artifact_id, "/../x")
    with pytest.raises(ValueError):
        artifact_key("../etc", artifact_id)  # type: ignore[arg-type]


def test_make_artifact_store_from_settings(tmp_path):
    local = make_artifact_store(Settings(_env_file=None, artifact_store=f"file://{tmp_path}/a"))
    assert isinstance(local, LocalArtifactStore) and local.root == (tmp_path / "a").resolve()
    s3 = make_artifact_store(
        Settings(
            _env_file=None,
            artifact_store="s3://lab-bucket/srnet",
            s3_region="eu-west-1",
            s3_access_key_id="AKIAEXAMPLE",
            s3_secret_access_key="secret",
        )
    )
    assert isinstance(s3, S3ArtifactStore)
    assert (s3.bucket, s3.prefix) == ("lab-bucket", "srnet")


def test_s3_store_requests():
    boto3 = pytest.importorskip("boto3")
    from botocore.response import StreamingBody
    from botocore.stub import Stubber

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    store = S3ArtifactStore("bucket", "pre/fix", client=client)
    key = artifact_key(uuid.uuid4(), uuid.uuid4(), ".tar")
    with Stubber(client) as stub:
        stub.add_response(
            "put_object",
            {},
            {
                "Bucket": "bucket",
                "Key": f"pre/fix/{key}",
                "Body": DATA,
                "Metadata": {"sha256": hashlib.sha256(DATA).hexdigest()},
            },
        )
        stub.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(DATA[5:15]), 10), "ContentLength": 10},
            {"Bucket": "bucket", "Key": f"pre/fix/{key}", "Range": "bytes=5-14"},
        )
        stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
        assert store.put_bytes(key, DATA).sha256 == hashlib.sha256(DATA).hexdigest()
        assert b"".join(store.open_range(key, 5, 14)) == DATA[5:15]
        assert store.exists(key) is False
        stub.assert_no_pending_responses()
    with pytest.raises(InvalidKey):
        store.put_bytes("../x", b"")
