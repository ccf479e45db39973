"""`execute_job` (the body of the `srnet.run_job` task) in-process against SQLite and a local
artifact store, with a tiny real model: statuses, events, metrics, artifacts, errors, retries,
resume, cancellation, shutdown and a lost lease."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import pytest

import srcore.pipeline
from persistence.repositories import ArtifactRepository, JobRepository, MetricRepository
from persistence.tables import EventKind, JobStatus
from srcore.jobspec.layout import artifact_names, job_tag, report_names
from tests.worker.conftest import RecordingSender
from tests.worker.tiny_job import (
    MNLI_LABELS,
    create_job,
    extract_checkpoint,
    pruned_weights,
    tiny_job_spec,
)
from worker import reporting
from worker.tasks import Outcome, WorkerContext, execute_job


@pytest.fixture(autouse=True)
def one_cpu():
    """srcore trains on every core this process may use; on a small shared machine two
    threads on a tiny model are many times slower than one (see tests/worker/processes.py)."""
    import torch

    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {max(affinity)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)


def job_state(ctx: WorkerContext, job_id: uuid.UUID):
    with ctx.database.session() as session:
        repo = JobRepository(session)
        job = repo.get(job_id)
        events = repo.events.list(job_id)
        metrics = MetricRepository(session).list(job_id)
        artifacts = ArtifactRepository(session).list(job_id)
        inline = {a.id: ArtifactRepository(session).read_inline(a.id) for a in artifacts}
    return job, events, metrics, artifacts, inline


def artifact_bytes(ctx: WorkerContext, artifact, inline) -> bytes:
    if artifact.storage_key is None:
        return inline[artifact.id]
    return b"".join(ctx.store.open_range(artifact.storage_key))


def stored_files(ctx: WorkerContext) -> list[Path]:
    root = Path(ctx.settings.artifact_store.removeprefix("file://"))
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def checkpoint_steps(ctx: WorkerContext, job_id: uuid.UUID, stage: str) -> list[int]:
    with ctx.database.session() as session:
        events = JobRepository(session).events.list(job_id)
    return [e.data["step"] for e in events
            if e.kind == EventKind.checkpoint and e.data["stage"] == stage]  # fmt: skip


@pytest.mark.slow
def test_a_job_runs_to_success_and_stores_its_results(worker_context, tiny_model_dir, tmp_path):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir))

    assert execute_job(str(job_id), ctx) is Outcome.succeeded

    job, events, metrics, artifacts, inline = job_state(ctx, job_id)
    assert job.status == JobStatus.succeeded and job.attempt == 1 and job.error is None
    assert job.finished_at is not None and job.started_at <= job.finished_at
    statuses = [e.status for e in events if e.kind == EventKind.status]
    assert statuses == ["running", "succeeded"]
    stages = [e.data["stage"] for e in events if e.kind == EventKind.stage]
    assert stages[:4] == ["data", "bias", "dense", "search"] and stages[-1] == "export"
    assert checkpoint_steps(ctx, job_id, "search") == [2, 4, 6, 8]
    assert len([e for e in events if e.kind == EventKind.artifact]) == 4

    # Curves: one per (stage, seed, sparsity), one selected point each, as metrics.json says.
    job_files = job_tag(job_id, "tiny")  # the spec's name and the short id
    assert job_files == f"tiny-{job_id.hex[:8]}"
    unit_names = artifact_names(job_files, 1, 0.5)
    report_name, plot_name = report_names(job_files)
    report_artifact = next(a for a in artifacts if a.name == report_name)
    report = json.loads(artifact_bytes(ctx, report_artifact, inline))
    curves: dict[tuple, list] = {}
    for m in metrics:
        curves.setdefault((m.stage, m.seed, m.sparsity), []).append(m)
    assert sorted(curves) == [("dense", 1, 0.0), ("search", 1, 0.5)]
    assert [m.step for m in curves[("dense", 1, 0.0)]] == [2, 4]
    assert [m.step for m in curves[("search", 1, 0.5)]] == [2, 4, 6, 8]
    selected = {key: [m.step for m in points if m.selected] for key, points in curves.items()}
    assert selected[("search", 1, 0.5)] == [report["results"][0]["selected_step"]]
    assert selected[("dense", 1, 0.0)] == [report["dense"][0]["selected_step"]]
    assert "dev" in curves[("search", 1, 0.5)][0].payload
    assert "hans" in curves[("search", 1, 0.5)][0].payload

    # Artifacts: bytes match their sha256 and size; masks inline, the rest in the store.
    by_name = {a.name: a for a in artifacts}
    assert set(by_name) == {unit_names.mask, unit_names.checkpoint, report_name, plot_name}
    assert unit_names.checkpoint == f"{job_files}-checkpoint-seed1-sparsity0.50.tar"
    for a in artifacts:
        data = artifact_bytes(ctx, a, inline)
        assert len(data) == a.size and hashlib.sha256(data).hexdigest() == a.sha256
    mask = by_name[unit_names.mask]
    assert mask.storage_key is None and mask.kind == "mask" and mask.sparsity == 0.5
    checkpoint = by_name[unit_names.checkpoint]
    assert checkpoint.storage_key is not None and checkpoint.seed == 1
    # The public report names artifacts, not the worker's folders.
    assert report["results"][0]["checkpoint"] == checkpoint.name

    # The archive holds a checkpoint plain transformers loads, pruned as reported.
    archive = tmp_path / "download.tar"
    archive.write_bytes(artifact_bytes(ctx, checkpoint, inline))
    folder = extract_checkpoint(archive, tmp_path / "extracted")
    zeros, total, id2label = pruned_weights(folder)
    sparsity = report["results"][0]["sparsity_report"]
    assert zeros == sparsity["pruned_weights"] and total == sparsity["masked_weights"]
    assert zeros / total == pytest.approx(0.5, abs=1e-3)
    assert id2label == {str(i): label for i, label in enumerate(MNLI_LABELS)}

    assert not ctx.worker_settings.job_dir(job_id).exists()  # work folder cleaned


@pytest.mark.slow
def test_a_bad_data_path_fails_at_once_with_the_message(
    worker_context, tiny_model_dir, sender, tmp_path
):
    ctx = worker_context
    missing = str(tmp_path / "nonexistent" / "mnli_train.json")
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, train_path=missing))

    assert execute_job(job_id, ctx) is Outcome.failed

    job, events, metrics, artifacts, _ = job_state(ctx, job_id)
    assert job.status == JobStatus.failed and job.attempt == 1
    assert missing in job.error
    assert sender.sent == []  # no retry
    assert artifacts == [] and metrics == []
    assert events[-1].status == "failed" and missing in events[-1].message


def test_a_local_path_outside_data_roots_is_refused_by_the_worker_too(
    worker_context, tiny_model_dir, sender
):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, train_path="/etc/passwd"))

    assert execute_job(job_id, ctx) is Outcome.failed
    job = job_state(ctx, job_id)[0]
    assert job.error.startswith(
        "local path not allowed on this worker (SRNET_DATA_ROOTS): data.train.path: /etc/passwd ("
    )
    assert sender.sent == []


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "./model"),  # relative: the worker's own working directory
        ("train", "sample:../../../../etc/passwd"),  # leaves the bundled folder
    ],
)
def test_the_worker_re_checks_every_loaded_field(worker_context, tiny_model_dir, field, value):
    """A row the API did not check (another client, an older API): the worker refuses it on
    the first attempt, naming the field, before anything is loaded."""
    ctx = worker_context
    spec = tiny_job_spec(tiny_model_dir)
    if field == "model":
        spec["model"]["name_or_path"] = value
    else:
        spec["data"]["train"] = {"format": "pair_json", "path": value}
    job_id = create_job(ctx.database, spec)
    assert execute_job(job_id, ctx) is Outcome.failed
    job = job_state(ctx, job_id)[0]
    assert job.attempt == 1 and job.status == "failed"
    assert ("model.name_or_path" if field == "model" else "data.train.path") in job.error


def test_a_classifier_of_another_size_fails_on_the_first_attempt(worker_context, tiny_model_dir):
    """The tiny model has a 3-way classifier; QQP has 2 labels: an input error, not retried."""
    ctx = worker_context
    spec = tiny_job_spec(tiny_model_dir)
    spec["task"] = "qqp"
    job_id = create_job(ctx.database, spec, max_attempts=3)
    assert execute_job(job_id, ctx) is Outcome.failed
    job = job_state(ctx, job_id)[0]
    assert job.status == "failed" and job.attempt == 1
    assert "3 labels" in job.error and "2 labels" in job.error, job.error


def test_an_unexpected_error_is_retried_then_fails(worker_context, sender, monkeypatch, tmp_path):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tmp_path / "unused"), max_attempts=2)

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU fell off the bus")

    monkeypatch.setattr(srcore.pipeline, "run_search", broken)

    assert execute_job(job_id, ctx) is Outcome.retrying
    job, events, *_ = job_state(ctx, job_id)
    assert job.status == JobStatus.queued and job.attempt == 1 and job.worker_id is None
    assert job.error == "RuntimeError: the GPU fell off the bus"
    assert job.enqueued_at is not None
    assert sender.sent == [(job_id, "gpu")]
    assert "attempt 1 failed" in events[-1].message

    assert execute_job(job_id, ctx) is Outcome.failed
    job, events, *_ = job_state(ctx, job_id)
    assert job.status == JobStatus.failed and job.attempt == 2
    assert job.error == "RuntimeError: the GPU fell off the bus (attempt 2 of 2)"
    assert sender.sent == [(job_id, "gpu")]  # no third send


def test_a_message_for_a_job_it_cannot_claim_is_dropped_quietly(worker_context, tmp_path):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tmp_path / "unused"))
    with ctx.database.session() as session:
        JobRepository(session).request_cancel(job_id)
        session.commit()
    before = job_state(ctx, job_id)[1]

    assert execute_job(job_id, ctx) is Outcome.skipped
    assert execute_job("not-a-uuid", ctx) is Outcome.skipped
    assert execute_job(uuid.uuid4(), ctx) is Outcome.skipped

    job, events, *_ = job_state(ctx, job_id)
    assert job.status == JobStatus.cancelled and job.attempt == 0
    assert [e.id for e in events] == [e.id for e in before]


class RecordingReporter(reporting.JobReporter):
    """Notes every evaluation srcore reports, before the reporter's de-duplication."""

    evaluated: ClassVar[list[tuple[str, int]]] = []

    def on_metrics(self, curve, step, metrics):
        RecordingReporter.evaluated.append((curve.stage, step))
        super().on_metrics(curve, step, metrics)


@pytest.mark.slow
def test_a_crashed_attempt_is_resumed_from_its_checkpoint(
    worker_context, tiny_model_dir, sender, monkeypatch
):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir))
    real_on_checkpoint = reporting.JobReporter.on_checkpoint
    crashed = []

    def crash_after_search_step_4(self, stage, step, path):
        real_on_checkpoint(self, stage, step, path)
        if stage == "search" and step == 4 and not crashed:
            crashed.append(step)
            raise RuntimeError("worker lost its GPU")

    monkeypatch.setattr(reporting.JobReporter, "on_checkpoint", crash_after_search_step_4)
    monkeypatch.setattr("worker.tasks.JobReporter", RecordingReporter)
    RecordingReporter.evaluated = []

    assert execute_job(job_id, ctx) is Outcome.retrying
    assert (ctx.worker_settings.job_dir(job_id) / "work" / "seed-1" / "mask-0.50").is_dir()
    RecordingReporter.evaluated = []

    assert execute_job(job_id, ctx) is Outcome.succeeded

    job, events, metrics, artifacts, _ = job_state(ctx, job_id)
    assert job.status == JobStatus.succeeded and job.attempt == 2
    resume = [e for e in events if e.kind == EventKind.log and "resuming" in (e.message or "")]
    assert len(resume) == 1
    assert {"path": "seed-1/mask-0.50", "step": 4} in resume[0].data["resume"]["checkpoints"]
    # The second attempt evaluated only what the first had not: no dense fine-tune (cached in
    # the work folder), search from step 4 on.
    assert RecordingReporter.evaluated == [("search", 6), ("search", 8)]
    search = [m.step for m in metrics if m.stage == "search"]
    assert search == [2, 4, 6, 8]
    assert len(artifacts) == 4


@pytest.mark.slow
def test_a_sweep_fine_tunes_the_dense_model_once(worker_context, tiny_model_dir):
    """Jobs on one host share the stage cache (WORK_DIR/cache by default)."""
    ctx = worker_context
    first = create_job(ctx.database, tiny_job_spec(tiny_model_dir, sparsities=(0.5,)))
    second = create_job(ctx.database, tiny_job_spec(tiny_model_dir, sparsities=(0.3,)))
    assert execute_job(str(first), ctx) is Outcome.succeeded
    assert execute_job(str(second), ctx) is Outcome.succeeded
    details = {}
    for job_id in (first, second):
        _, events, *_ = job_state(ctx, job_id)
        details[job_id] = [e.message or "" for e in events if e.kind == EventKind.stage]
    assert not any("reused cached fine-tune" in m for m in details[first])
    assert any("reused cached fine-tune" in m for m in details[second]), details[second]
    assert len(list((ctx.worker_settings.work_dir / "cache").glob("dense-*"))) == 1


@pytest.mark.slow
def test_cancel_stops_a_running_job_within_a_few_steps(worker_context, tiny_model_dir):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, search_steps=400,
                                                    eval_every=10))  # fmt: skip
    requested_at: list[int] = []

    def cancel_once_searching() -> None:
        wait_for(lambda: checkpoint_steps(ctx, job_id, "search"))
        with ctx.database.session() as session:
            repo = JobRepository(session)
            requested_at.append(repo.get(job_id).progress_step)
            repo.request_cancel(job_id)
            session.commit()

    canceller = threading.Thread(target=cancel_once_searching)
    canceller.start()
    outcome = execute_job(job_id, ctx)
    canceller.join()

    assert outcome is Outcome.cancelled
    job, events, _, artifacts, _ = job_state(ctx, job_id)
    assert job.status == JobStatus.cancelled and job.finished_at is not None
    assert artifacts == [] and stored_files(ctx) == []
    stopped_at = checkpoint_steps(ctx, job_id, "search")[-1]  # srcore checkpoints as it stops
    assert stopped_at < 400
    assert stopped_at - requested_at[0] <= 60, (requested_at, stopped_at)
    assert [e.status for e in events if e.kind == EventKind.status] == [
        "running", "cancelling", "cancelled"]  # fmt: skip
    assert not ctx.worker_settings.job_dir(job_id).exists()


@pytest.mark.slow
def test_a_cancel_that_arrives_while_storing_wins_and_leaves_no_artifact(
    worker_context, tiny_model_dir, monkeypatch
):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir))
    import worker.tasks

    real_upload = worker.tasks.upload_results

    def upload_then_cancel(*args, **kwargs):
        uploaded = real_upload(*args, **kwargs)
        assert len(stored_files(ctx)) == 3  # checkpoint, metrics.json, report.png
        with ctx.database.session() as session:
            JobRepository(session).request_cancel(job_id)
            session.commit()
        return uploaded

    monkeypatch.setattr(worker.tasks, "upload_results", upload_then_cancel)

    assert execute_job(job_id, ctx) is Outcome.cancelled
    job, _, _, artifacts, _ = job_state(ctx, job_id)
    assert job.status == JobStatus.cancelled
    assert artifacts == [] and stored_files(ctx) == []


@pytest.mark.slow
def test_worker_shutdown_gives_the_job_back_to_resume_later(worker_context, tiny_model_dir, sender):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, search_steps=400,
                                                    eval_every=10))  # fmt: skip

    def shut_down_once_searching() -> None:
        wait_for(lambda: checkpoint_steps(ctx, job_id, "search"))
        ctx.shutdown.set()  # what the STOP_SIGNAL handler does in a pool child

    stopper = threading.Thread(target=shut_down_once_searching)
    stopper.start()
    outcome = execute_job(job_id, ctx)
    stopper.join()

    assert outcome is Outcome.interrupted
    job, events, *_ = job_state(ctx, job_id)
    assert job.status == JobStatus.queued and job.error is None and job.worker_id is None
    assert job.attempt == 0  # refunded: a shutdown does not use up one of max_attempts
    assert sender.sent == [(job_id, "gpu")]
    assert "shutting down" in events[-1].message
    step = checkpoint_steps(ctx, job_id, "search")[-1]
    assert step < 400  # stopped between two steps, not at the end
    latest = ctx.worker_settings.job_dir(job_id) / "work" / "seed-1" / "mask-0.50" / "latest"
    assert latest.read_text().strip() == f"step-{step:08d}"  # kept for the next attempt


@pytest.mark.slow
def test_a_worker_that_lost_its_lease_stops_and_writes_nothing(worker_context, tiny_model_dir):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, search_steps=400,
                                                    eval_every=10))  # fmt: skip
    taken_over: list[int] = []

    def recover_as_if_dead() -> None:
        wait_for(lambda: checkpoint_steps(ctx, job_id, "search"))
        with ctx.database.session() as session:
            repo = JobRepository(session)
            worker_id = repo.get(job_id).worker_id
            # What the reconciler does to a job whose heartbeat it thinks stopped.
            repo.transition(job_id, JobStatus.queued, worker_id=worker_id, message="recovered")
            session.commit()
            taken_over.append(repo.events.list(job_id)[-1].id)

    thief = threading.Thread(target=recover_as_if_dead)
    thief.start()
    outcome = execute_job(job_id, ctx)
    thief.join()

    assert outcome is Outcome.lost
    job, events, _, artifacts, _ = job_state(ctx, job_id)
    assert job.status == JobStatus.queued and artifacts == []
    assert (ctx.worker_settings.job_dir(job_id) / "work").is_dir()  # not cleaned: not ours
    assert max(checkpoint_steps(ctx, job_id, "search")) < 400
    after = [e for e in events if e.id > taken_over[0]]
    # At most a write that was already under way when the lease went.
    assert len(after) <= 1 and all(e.kind != EventKind.status for e in after)


def test_the_task_is_registered_under_the_name_the_api_sends():
    from persistence.broker import RUN_JOB_TASK
    from worker.celery_app import app

    app.loader.import_default_modules()
    assert RUN_JOB_TASK == "srnet.run_job" and RUN_JOB_TASK in app.tasks
    task = app.tasks[RUN_JOB_TASK]
    assert task.acks_late is True and task.reject_on_worker_lost is True


def test_a_sender_that_fails_leaves_the_retry_to_the_reconciler(
    worker_context, sender: RecordingSender, monkeypatch, tmp_path
):
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tmp_path / "unused"))
    monkeypatch.setattr(srcore.pipeline, "run_search",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))  # fmt: skip
    sender.fail = True
    assert execute_job(job_id, ctx) is Outcome.retrying
    job = job_state(ctx, job_id)[0]
    assert job.status == JobStatus.queued
    # enqueued_at is still the API's (None here): the reconciler sends jobs never sent.
    assert job.enqueued_at is None


def test_checkpoints_from_other_settings_are_dropped_and_the_job_retried(
    worker_context, sender, monkeypatch, tmp_path
):
    from srcore.training.trainer import ResumeMismatchError

    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tmp_path / "unused"))

    def mismatched(spec, out_dir, *args, **kwargs):
        (out_dir / "work" / "seed-1").mkdir(parents=True)
        raise ResumeMismatchError("cannot resume: settings changed {'lr': (0.1, 0.01)}")

    monkeypatch.setattr(srcore.pipeline, "run_search", mismatched)
    assert execute_job(job_id, ctx) is Outcome.retrying
    assert not (ctx.worker_settings.job_dir(job_id) / "work").exists()
    assert sender.sent == [(job_id, "gpu")]
    assert job_state(ctx, job_id)[0].error.startswith("ResumeMismatchError: cannot resume")


def test_a_second_delivery_of_a_claimed_job_is_a_no_op(worker_context, tiny_model_dir, sender):
    """The reconciler may re-send a job in the seconds between a worker taking its message and
    claiming it (the job still reads `queued`, sent long ago). The second message is dropped at
    the claim: no attempt counted, no event, no work folder, nothing sent — while the first
    worker runs it and after it has finished."""
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir), max_attempts=3)
    with ctx.database.session() as session:  # worker A took the first message and claimed
        assert JobRepository(session).claim(job_id, "worker-a") is not None
        session.commit()
    before = job_state(ctx, job_id)

    assert execute_job(job_id, ctx) is Outcome.skipped  # the duplicate, on worker B
    after = job_state(ctx, job_id)
    assert after[0].worker_id == "worker-a" and after[0].attempt == before[0].attempt == 1
    assert after[0].status == "running"
    assert [e.id for e in after[1]] == [e.id for e in before[1]]
    assert not ctx.worker_settings.job_dir(job_id).exists() and sender.sent == []

    with ctx.database.session() as session:  # A finishes; a late duplicate still changes nothing
        JobRepository(session).transition(job_id, JobStatus.succeeded, worker_id="worker-a")
        session.commit()
    assert execute_job(job_id, ctx) is Outcome.skipped
    assert job_state(ctx, job_id)[0].status == "succeeded"
