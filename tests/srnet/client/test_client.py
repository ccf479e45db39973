"""srnet.client.SRNetClient against a real running API."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from persistence.tables import ArtifactKind, JobStatus
from srcore.jobspec.layout import artifact_names, job_tag, report_names
from srnet.client import (
    ArtifactNotAvailable,
    Conflict,
    InvalidSpec,
    NotFound,
    SRNetClient,
    SSEParser,
    TargetExists,
    Unauthorized,
    Unreachable,
    ValidationFailed,
    WaitTimeout,
)
from tests.client.live_service import LiveService, free_port


def names(job_id: str, sparsity: float = 0.5):
    """The stand-in worker's names, made where the real worker's are."""
    return artifact_names(job_tag(job_id), 1, sparsity)


SPEC = {"name": "poe-50-70", "debias": {"loss": "poe"}, "pruning": {"sparsities": [0.7, 0.5]}}


def test_submit_answers_the_stored_job_with_defaults_filled(client: SRNetClient, service):
    job = client.submit(SPEC)
    assert job.status == "queued"
    assert uuid.UUID(job.id)
    assert job.spec is not None
    assert job.spec["pruning"]["sparsities"] == [0.5, 0.7]  # sorted by the spec
    assert job.spec["training"]["batch_size"] == 32  # a default, filled in
    assert client.get(job.id).spec_hash == job.spec_hash
    assert (uuid.UUID(job.id), "gpu") in service.enqueuer.sent


def test_submit_from_a_file_a_jobspec_and_with_an_idempotency_key(client, tmp_path):
    from srcore.jobspec.spec import JobSpec

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    from_file = client.submit(path, idempotency_key="run-1")
    again = client.submit(str(path), idempotency_key="run-1")
    assert again.id == from_file.id  # the same job, not a second one
    with pytest.raises(Conflict):
        client.submit({**SPEC, "name": "other"}, idempotency_key="run-1")
    from_model = client.submit(JobSpec.model_validate(SPEC), queue="cpu")
    assert from_model.queue == "cpu"
    assert from_model.spec_hash == from_file.spec_hash


def test_invalid_spec_raises_validation_failed_naming_the_field(client):
    before = client.list().count
    with pytest.raises(ValidationFailed) as caught:
        client.submit({"pruning": {"sparsities": [0.5, 1.5]}})
    error = caught.value
    assert error.status == 422
    assert any(f.startswith("pruning.sparsities") for f in error.fields), error.fields
    assert "less than 1" in error.errors[0].message
    # model-level rules point at their section; unknown fields are named too
    with pytest.raises(ValidationFailed) as caught:
        client.submit({"pruning": {"method": "imp", "sparsities": [0.55]}, "bogus": 1})
    assert {"pruning", "bogus"} <= set(caught.value.fields)
    assert client.list().count == before  # nothing was stored


def test_unreadable_or_non_json_spec_files(client, tmp_path):
    with pytest.raises(InvalidSpec, match="cannot read"):
        client.submit(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidSpec, match="not JSON"):
        client.submit(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(InvalidSpec, match="object"):
        client.submit(bad)


def test_list_filters_pages_and_iterates(client):
    ids = [client.submit({**SPEC, "name": f"job-{i}"}).id for i in range(5)]
    client.cancel(ids[0])
    page = client.list(limit=2)
    assert page.count == 5 and len(page.jobs) == 2 and page.next_cursor
    assert [j.id for j in page.jobs] == ids[:-3:-1]  # newest first
    second = client.list(limit=2, cursor=page.next_cursor)
    assert {j.id for j in second.jobs}.isdisjoint({j.id for j in page.jobs})
    assert [j.id for j in client.iterate(page_size=2)] == ids[::-1]
    cancelled = client.list("cancelled")
    assert [j.id for j in cancelled.jobs] == [ids[0]]
    assert client.list(["queued", "cancelled"]).count == 5


def test_cancel_queued_then_conflict_once_finished(client):
    job = client.submit(SPEC)
    cancelled = client.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.is_finished
    with pytest.raises(Conflict) as caught:
        client.cancel(job.id)
    assert caught.value.status == 409 and caught.value.type == "job_not_cancellable"


def test_wrong_key_unknown_job_and_other_owners_jobs(service: LiveService, client):
    job = client.submit(SPEC)
    with SRNetClient(service.url, "srn_not-a-key") as stranger, pytest.raises(Unauthorized):
        stranger.list()
    with SRNetClient(service.url, service.key_for("lab-other")) as other:
        with pytest.raises(NotFound):
            other.get(job.id)
        with pytest.raises(NotFound):
            other.cancel(job.id)
    with pytest.raises(NotFound):
        client.get(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        client.get("../../etc/passwd")  # refused before any request


def test_unreachable_service():
    with SRNetClient(f"http://127.0.0.1:{free_port()}", "srn_x", timeout=2) as dead:
        with pytest.raises(Unreachable):
            dead.list()
        with pytest.raises(Unreachable):
            dead.submit(SPEC)


def test_key_and_url_from_the_environment(service, key, monkeypatch):
    monkeypatch.setenv("SRNET_URL", service.url)
    monkeypatch.setenv("SRNET_API_KEY", key)
    with SRNetClient() as from_env:
        assert from_env.url == service.url
        assert from_env.list().count == 0
        assert key not in repr(from_env)


def test_events_stream_and_wait_follow_a_job_to_the_end(service: LiveService, client):
    job = client.submit(SPEC)
    worker = service.worker(job.id)
    seen: list[str] = []
    updates: list[str] = []

    thread = threading.Thread(target=worker.run_search, kwargs={"pause_s": 0.02})

    def on_update(state) -> None:
        updates.append(state.status)
        if not thread.is_alive() and len(updates) == 1:
            thread.start()  # the worker starts once the client has seen the queued job

    final = client.wait(
        job.id, timeout=30, on_update=on_update, on_event=lambda e: seen.append(e.kind)
    )
    thread.join()
    assert final.status == "succeeded" and final.finished_at is not None
    assert updates[0] == "queued" and updates[-1] == "succeeded" and "running" in updates
    assert updates.count("succeeded") == 1  # one call per state, not one per way it arrived
    assert {"status", "stage", "artifact"} <= set(seen)
    events = client.events(job.id)
    assert events[0].kind == "created"
    assert events[-1].status == "succeeded"
    assert client.events(job.id, after=events[-2].id) == events[-1:]
    # A finished job's stream replays everything, then ends.
    messages = list(client.stream_events(job.id))
    assert messages[-1].event == "end" and messages[-1].data == {"status": "succeeded"}
    logged = [m.log_event for m in messages if m.event == "event"]
    assert [e.id for e in logged if e] == [e.id for e in events]
    # Last-Event-ID: only what came after.
    tail = list(client.stream_events(job.id, last_event_id=events[-2].id))
    assert [m.log_event.id for m in tail if m.log_event] == [events[-1].id]


def test_wait_by_polling_and_timeout(service: LiveService, client):
    job = client.submit(SPEC)
    with pytest.raises(WaitTimeout) as caught:
        client.wait(job.id, timeout=0.3, stream=False, poll_interval=0.05)
    assert caught.value.job.status == "queued"
    with pytest.raises(WaitTimeout):
        client.wait(job.id, timeout=1.5)  # streaming: keep-alives let it check the deadline
    worker = service.worker(job.id)
    worker.claim()
    worker.finish(JobStatus.failed, error="CUDA out of memory")
    final = client.wait(job.id, stream=False, poll_interval=0.05)
    assert final.status == "failed" and final.error == "CUDA out of memory"


def test_metrics_curves_and_selected_points(service: LiveService, client):
    job = client.submit(SPEC)
    service.worker(job.id).run_search((0.5, 0.7))
    metrics = client.metrics(job.id)
    assert metrics.job_id == job.id
    assert [(c.stage, c.sparsity) for c in metrics.curves] == [
        ("dense", None),
        ("search", 0.5),
        ("search", 0.7),
    ]
    assert [len(c.points) for c in metrics.curves] == [2, 4, 4]
    selected = {p.effective_sparsity: p for p in metrics.selected}
    assert sorted(selected) == [0.0, 0.5, 0.7]
    assert selected[0.5].step == 30
    sets = selected[0.7].eval_sets()
    assert set(sets) == {"dev", "hans"}
    assert sets["dev"]["accuracy"] == pytest.approx(0.78 - 0.05 + 30 / 2000)
    assert set(sets["hans"]["heuristics"]) == {"lexical_overlap", "subsequence", "constituent"}


# --- downloads -----------------------------------------------------------------------------------


@pytest.fixture
def finished_job(service: LiveService, client) -> tuple[str, bytes]:
    """A succeeded job with a 300 KB checkpoint archive (random bytes) in the artifact store."""
    job = client.submit(SPEC)
    payload = os.urandom(300_000)
    service.worker(job.id).run_search((0.5,), checkpoint=payload)
    return job.id, payload


def test_download_verifies_sha256_and_skips_a_good_copy(client, finished_job, tmp_path):
    job_id, payload = finished_job
    [done] = client.download(job_id, "checkpoint", tmp_path)
    assert done.path == tmp_path / names(job_id).checkpoint
    assert done.path.name == f"{job_id.replace('-', '')[:8]}-checkpoint-seed1-sparsity0.50.tar"
    assert done.path.read_bytes() == payload
    assert done.artifact.sha256 == hashlib.sha256(payload).hexdigest()
    assert not done.skipped and done.resumed_from == 0
    assert not list(tmp_path.glob("*.part"))
    [again] = client.download(job_id, "checkpoint", tmp_path)
    assert again.skipped
    masks = client.download(job_id, "mask", tmp_path / "masks")  # inline bytes in the DB
    assert [m.path.name for m in masks] == [names(job_id).mask]
    assert masks[0].path.read_bytes() == bytes(range(256)) * 8
    report = client.download(job_id, "report", tmp_path / "report")
    assert [r.path.name for r in report] == [report_names(job_tag(job_id)).report]
    assert client.download(job_id, "checkpoint", tmp_path / "s", sparsity=0.5)
    assert client.download(job_id, "checkpoint", tmp_path / "p", sparsity=50)  # 50 = 50 %
    with pytest.raises(ArtifactNotAvailable) as missing:
        client.download(job_id, "checkpoint", tmp_path / "none", sparsity=0.9)
    assert str(missing.value).endswith(
        "has no checkpoint artifact with sparsity 0.9; it has: checkpoint (seed 1, sparsity 0.5),"
        " mask (seed 1, sparsity 0.5), report"
    )
    assert not (tmp_path / "none").exists()


def test_download_resumes_a_partial_file_with_range(client, finished_job, tmp_path):
    job_id, payload = finished_job
    part = tmp_path / f"{names(job_id).checkpoint}.part"
    part.write_bytes(payload[:123_457])  # left by a broken earlier download
    [done] = client.download(job_id, "checkpoint", tmp_path)
    assert done.resumed_from == 123_457
    assert done.path.read_bytes() == payload
    assert not part.exists()


def test_a_corrupt_partial_file_fails_the_checksum_and_is_removed(client, finished_job, tmp_path):
    from srnet.client import ChecksumMismatch

    job_id, payload = finished_job
    part = tmp_path / f"{names(job_id).checkpoint}.part"
    part.write_bytes(b"\0" * 1000)  # not the artifact's first bytes
    with pytest.raises(ChecksumMismatch):
        client.download(job_id, "checkpoint", tmp_path)
    assert not part.exists() and not (tmp_path / part.name.removesuffix(".part")).exists()
    [done] = client.download(job_id, "checkpoint", tmp_path)  # a clean retry succeeds
    assert done.path.read_bytes() == payload


class CuttingTransport(httpx.HTTPTransport):
    """The real HTTP transport, but the first artifact download breaks after `cut` bytes, as a
    dropped connection does. Records the Range header of every artifact request."""

    def __init__(self, cut: int):
        super().__init__()
        self.cut = cut
        self.ranges: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if "/artifacts/" not in request.url.path:
            return response
        self.ranges.append(request.headers.get("Range"))
        if len(self.ranges) > 1:
            return response
        stream = response.stream
        cut = self.cut

        class Broken(httpx.SyncByteStream):
            def __iter__(self):
                sent = 0
                for chunk in stream:
                    if sent + len(chunk) >= cut:
                        yield chunk[: cut - sent]
                        raise httpx.ReadError("connection reset by peer")
                    sent += len(chunk)
                    yield chunk

            def close(self) -> None:
                stream.close()

        return httpx.Response(
            response.status_code, headers=response.headers, stream=Broken(), request=request
        )


def test_a_dropped_connection_is_resumed_with_range(service, key, finished_job, tmp_path):
    job_id, payload = finished_job
    transport = CuttingTransport(cut=100_000)
    with SRNetClient(service.url, key, transport=transport) as flaky:
        [done] = flaky.download(job_id, "checkpoint", tmp_path)
    assert transport.ranges == [None, "bytes=100000-"]
    assert done.resumed_from == 100_000
    assert done.path.read_bytes() == payload


def _job_with_checkpoint(service: LiveService, client, folder: Path, name: str = "same-name"):
    from tests.client.live_service import tar_bytes

    job = client.submit({**SPEC, "name": name})
    unit = artifact_names(job_tag(job.id, name), 1, 0.5)
    worker = service.worker(job.id)
    worker.claim()
    worker.artifact(
        ArtifactKind.checkpoint, unit.checkpoint, tar_bytes(folder, unit.checkpoint_root),
        sparsity=0.5,
    )  # fmt: skip
    worker.finish()
    return job, unit


def test_extract_a_checkpoint_archive_one_level_deep(service: LiveService, client, tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"id2label": {"0": "entailment"}}')
    (folder / "sub" / "x.txt").write_text("x")
    job, unit = _job_with_checkpoint(service, client, folder)
    [done] = client.download(job.id, "checkpoint", tmp_path / "out", extract=True)
    assert done.extracted_to == tmp_path / "out" / unit.checkpoint_root
    assert json.loads((done.extracted_to / "config.json").read_text())["id2label"]["0"] == (
        "entailment"
    )
    assert (done.extracted_to / "sub" / "x.txt").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [unit.checkpoint, unit.checkpoint_root]
    )
    # Again: the same content is already there, nothing is replaced or refused.
    [again] = client.download(job.id, "checkpoint", tmp_path / "out", extract=True)
    assert again.skipped and again.extracted_to == done.extracted_to


def test_two_jobs_with_one_name_never_collide_and_nothing_is_overwritten_without_force(
    service: LiveService, client, tmp_path
):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, text in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"which": text}))
    job1, unit1 = _job_with_checkpoint(service, client, first)
    job2, unit2 = _job_with_checkpoint(service, client, second)
    assert unit1.checkpoint != unit2.checkpoint and unit1.checkpoint.startswith("same-name-")
    out = tmp_path / "models"
    [one] = client.download(job1.id, "checkpoint", out, extract=True)
    [two] = client.download(job2.id, "checkpoint", out, extract=True)
    assert json.loads((one.extracted_to / "config.json").read_text()) == {"which": "first"}
    assert json.loads((two.extracted_to / "config.json").read_text()) == {"which": "second"}

    # A different file where the archive goes, or a different folder where it unpacks: refused.
    (out / unit1.checkpoint).write_bytes(b"something else")
    with pytest.raises(TargetExists, match="--force"):
        client.download(job1.id, "checkpoint", out)
    assert (out / unit1.checkpoint).read_bytes() == b"something else"
    client.download(job1.id, "checkpoint", out, force=True)
    (one.extracted_to / "config.json").write_text("{}")
    with pytest.raises(TargetExists, match="--force"):
        client.download(job1.id, "checkpoint", out, extract=True)
    assert (one.extracted_to / "config.json").read_text() == "{}"
    [forced] = client.download(job1.id, "checkpoint", out, extract=True, force=True)
    assert json.loads((forced.extracted_to / "config.json").read_text()) == {"which": "first"}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging left


def test_sse_parser_follows_the_format():
    parser = SSEParser()
    lines = [
        "retry: 1500",
        "",
        ": keepalive",
        "id: 7",
        "event: event",
        'data: {"a":',
        "data: 1}",
        "",
        "data: plain",
        "",
    ]
    messages = [m for m in map(parser.feed, lines) if m]
    assert parser.retry_ms == 1500
    assert messages == [("event", '{"a":\n1}', "7"), ("message", "plain", None)]
    assert parser.last_id == "7"


def test_artifact_names_cannot_escape_the_folder():
    from srnet.client import _safe_filename

    assert _safe_filename("../../etc/passwd") == "passwd"
    assert _safe_filename("..\\..\\boot.ini") == "boot.ini"
    assert _safe_filename("mask ü 0.5.safetensors") == "mask_u_0.5.safetensors"
    assert _safe_filename("...") == "artifact"
    assert Path(_safe_filename("/abs/x.tar")).name == "x.tar"
