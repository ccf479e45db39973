"""Artifact listing and downloads: ETag/304, Range/206/416, safe names, path tricks."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from persistence.artifacts import artifact_key
from persistence.repositories import ArtifactRepository
from persistence.tables import ArtifactKind

BLOB = bytes(range(256)) * 64  # 16 KiB
MASK = b"\x0f\xf0" * 50


@pytest.fixture
def job_with_artifacts(client, auth, app_database, store):
    job_id = uuid.UUID(client.post("/jobs", json={}, headers=auth).json()["id"])
    ckpt_id = uuid.uuid4()
    stored = store.put_bytes(artifact_key(job_id, ckpt_id, ".tar"), BLOB)
    with app_database.session() as session:
        artifacts = ArtifactRepository(session)
        artifacts.add(
            job_id,
            kind=ArtifactKind.checkpoint,
            artifact_id=ckpt_id,
            name="../../checkpoint seed-1 sparsity-0.5.tar",
            size=stored.size,
            sha256=stored.sha256,
            storage_key=stored.key,
            content_type="application/x-tar",
            seed=1,
            sparsity=0.5,
        )
        mask = artifacts.add(
            job_id,
            kind=ArtifactKind.mask,
            name="mask-0.5.safetensors",
            size=len(MASK),
            sha256=hashlib.sha256(MASK).hexdigest(),
            data=MASK,
            seed=1,
            sparsity=0.5,
        )
        session.commit()
        return job_id, ckpt_id, mask.id


def url(job_id, artifact_id) -> str:
    return f"/jobs/{job_id}/artifacts/{artifact_id}"


def test_list_artifacts(client, auth, job_with_artifacts):
    job_id, ckpt_id, mask_id = job_with_artifacts
    body = client.get(f"/jobs/{job_id}/artifacts", headers=auth).json()
    assert body["count"] == 2
    by_id = {a["id"]: a for a in body["data"]}
    ckpt = by_id[str(ckpt_id)]
    assert (ckpt["kind"], ckpt["size"], ckpt["sha256"]) == (
        "checkpoint",
        len(BLOB),
        hashlib.sha256(BLOB).hexdigest(),
    )
    assert ckpt["download_url"].endswith(url(job_id, ckpt_id))
    assert by_id[str(mask_id)]["kind"] == "mask" and by_id[str(mask_id)]["size"] == len(MASK)


def test_download_whole_with_etag_and_safe_name(client, auth, job_with_artifacts):
    job_id, ckpt_id, _ = job_with_artifacts
    response = client.get(url(job_id, ckpt_id), headers=auth)
    assert response.status_code == 200
    assert response.content == BLOB
    sha = hashlib.sha256(BLOB).hexdigest()
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["content-length"] == str(len(BLOB))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "application/x-tar"
    disposition = response.headers["content-disposition"]
    assert 'filename="checkpoint_seed-1_sparsity-0.5.tar"' in disposition
    assert "../" not in disposition.split("filename*=")[0]


def test_if_none_match(client, auth, job_with_artifacts):
    job_id, ckpt_id, _ = job_with_artifacts
    etag = client.get(url(job_id, ckpt_id), headers=auth).headers["etag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        response = client.get(url(job_id, ckpt_id), headers={**auth, "If-None-Match": header})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] == etag
    miss = client.get(url(job_id, ckpt_id), headers={**auth, "If-None-Match": '"nope"'})
    assert miss.status_code == 200 and miss.content == BLOB


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=100-", 100, len(BLOB) - 1),
        ("bytes=-5", len(BLOB) - 5, len(BLOB) - 1),
        ("bytes=16000-99999", 16000, len(BLOB) - 1),
        ("bytes=7-7", 7, 7),
    ],
)
def test_range_is_206(client, auth, job_with_artifacts, header, start, end):
    job_id, ckpt_id, _ = job_with_artifacts
    response = client.get(url(job_id, ckpt_id), headers={**auth, "Range": header})
    assert response.status_code == 206
    assert response.content == BLOB[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{len(BLOB)}"
    assert response.headers["content-length"] == str(end - start + 1)


def test_range_of_an_inline_mask(client, auth, job_with_artifacts):
    job_id, _, mask_id = job_with_artifacts
    whole = client.get(url(job_id, mask_id), headers=auth)
    assert whole.content == MASK
    part = client.get(url(job_id, mask_id), headers={**auth, "Range": "bytes=3-10"})
    assert part.status_code == 206 and part.content == MASK[3:11]


@pytest.mark.parametrize(
    "header",
    [f"bytes={len(BLOB)}-", "bytes=20000-20010", "bytes=9-2", "bytes=abc", "bytes=-0", "bytes=-"],
)
def test_invalid_range_is_416(client, auth, job_with_artifacts, header):
    job_id, ckpt_id, _ = job_with_artifacts
    response = client.get(url(job_id, ckpt_id), headers={**auth, "Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(BLOB)}"
    assert response.json()["type"] == "range_not_satisfiable"


def test_if_range_mismatch_sends_everything(client, auth, job_with_artifacts):
    job_id, ckpt_id, _ = job_with_artifacts
    response = client.get(
        url(job_id, ckpt_id), headers={**auth, "Range": "bytes=0-9", "If-Range": '"old"'}
    )
    assert response.status_code == 200 and response.content == BLOB


@pytest.mark.parametrize(
    "artifact_path",
    [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "%2e%2e%2f%2e%2e%2fartifacts.db",
        "not-a-uuid",
        "..%5C..%5Cwindows",
        "%00",
    ],
)
def test_path_tricks_are_404(client, auth, job_with_artifacts, artifact_path):
    job_id, _, _ = job_with_artifacts
    response = client.get(f"/jobs/{job_id}/artifacts/{artifact_path}", headers=auth)
    assert response.status_code == 404


def test_raw_dot_segments_do_not_escape(client, auth, job_with_artifacts):
    job_id, _, _ = job_with_artifacts
    for path in (
        f"/jobs/{job_id}/artifacts/../../../etc/passwd",
        f"/jobs/{job_id}/artifacts/./../x",
    ):
        response = client.get(path, headers=auth)
        assert response.status_code in (401, 404)
        assert b"root:" not in response.content


def test_artifact_of_another_job_or_owner_is_404(client, auth, other_auth, job_with_artifacts):
    job_id, ckpt_id, _ = job_with_artifacts
    second_job = client.post("/jobs", json={}, headers=auth).json()["id"]
    response = client.get(url(second_job, ckpt_id), headers=auth)
    assert response.status_code == 404 and response.json()["type"] == "artifact_not_found"
    assert client.get(url(job_id, ckpt_id), headers=other_auth).status_code == 404
    assert client.get(f"/jobs/{job_id}/artifacts", headers=other_auth).status_code == 404


def test_bytes_missing_from_the_store_are_404(client, auth, job_with_artifacts, store):
    job_id, ckpt_id, _ = job_with_artifacts
    store.delete(artifact_key(job_id, ckpt_id, ".tar"))
    response = client.get(url(job_id, ckpt_id), headers=auth)
    assert response.status_code == 404


def test_an_onnx_artifact_is_listed_and_downloaded_like_the_others(client, auth, app_database,
                                                                    store):  # fmt: skip
    job_id = uuid.UUID(client.post("/jobs", json={}, headers=auth).json()["id"])
    onnx_id = uuid.uuid4()
    stored = store.put_bytes(artifact_key(job_id, onnx_id, ".tar"), BLOB)
    with app_database.session() as session:
        ArtifactRepository(session).add(
            job_id, kind=ArtifactKind.onnx, artifact_id=onnx_id,
            name="job-onnx-seed1-sparsity0.50.tar", size=stored.size, sha256=stored.sha256,
            storage_key=stored.key, content_type="application/x-tar", seed=1, sparsity=0.5,
        )  # fmt: skip
        session.commit()
    [listed] = client.get(f"/jobs/{job_id}/artifacts", headers=auth).json()["data"]
    assert (listed["kind"], listed["seed"], listed["sparsity"]) == ("onnx", 1, 0.5)
    response = client.get(url(job_id, onnx_id), headers=auth)
    assert response.status_code == 200 and response.content == BLOB
    assert response.headers["etag"] == f'"{hashlib.sha256(BLOB).hexdigest()}"'
