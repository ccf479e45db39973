"""Where a job runs is recorded, and a cpu-queue job runs on the CPU even where the worker's
process was given a GPU (in-process, SQLite, the tiny real model)."""

from __future__ import annotations

import os

import pytest

from persistence.repositories import JobRepository
from persistence.tables import EventKind, JobStatus
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.tasks import Outcome, execute_job

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def one_cpu():
    import torch

    affinity, threads = os.sched_getaffinity(0), torch.get_num_threads()
    os.sched_setaffinity(0, {max(affinity)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, affinity)
        torch.set_num_threads(threads)


def test_a_cpu_queue_job_hides_the_gpu_and_records_its_device(
    worker_context, tiny_model_dir, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-4a3b2c1d")  # as a pinned gpu worker has it
    spec = tiny_job_spec(tiny_model_dir, search_steps=2, eval_every=2, dense_steps=2)
    job_id = create_job(worker_context.database, spec, queue="cpu")

    assert execute_job(str(job_id), worker_context) is Outcome.succeeded

    with worker_context.database.session() as session:
        repo = JobRepository(session)
        assert repo.get(job_id).status == JobStatus.succeeded
        events = repo.events.list(job_id)
    (placed,) = [e for e in events if e.kind == EventKind.log and "running on" in e.message]
    assert placed.message.startswith("running on cpu")
    assert placed.data["queue"] == "cpu" and placed.data["cuda_visible_devices"] == ""
    assert placed.data["device"]["type"] == "cpu" and placed.data["attempt"] == 1
    # Before the stages: the device is known before any number is computed.
    first_stage = next(i for i, e in enumerate(events) if e.kind == EventKind.stage)
    assert events.index(placed) < first_stage
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "GPU-4a3b2c1d"  # given back after the job
