"""A job that runs out of GPU memory fails at once with srcore's message (it is not retried:
every attempt would reload, re-tokenise and fail at the same step).

The out-of-memory is the one fake here (no GPU): the first training step raises
torch.OutOfMemoryError as CUDA's allocator does; the rest of the job is the real pipeline."""

from __future__ import annotations

import pytest
import torch

from persistence.repositories import JobRepository
from persistence.tables import JobStatus
from srcore.training.trainer import Trainer
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.tasks import Outcome, execute_job


@pytest.fixture(autouse=True)
def one_cpu():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_out_of_memory_in_training_fails_the_job_on_the_first_attempt(
    worker_context, tiny_model_dir, sender, monkeypatch
):
    def out_of_memory(self, batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "_train_step", out_of_memory)
    ctx = worker_context
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir), max_attempts=3)

    assert execute_job(job_id, ctx) is Outcome.failed

    with ctx.database.session() as session:
        repo = JobRepository(session)
        job, events = repo.get(job_id), repo.events.list(job_id)
    assert job.status == JobStatus.failed and job.attempt == 1
    assert sender.sent == []  # not sent again
    assert "out of memory in training step 1 (batch " in job.error
    assert "Lower training.batch_size or training.max_length" in job.error
    assert events[-1].status == "failed"


def test_a_setting_the_gpu_cannot_honour_is_an_input_error():
    """bf16 on a GPU without bf16 tensor cores fails the same way on every attempt."""
    from srcore.training.device import DeviceSettingError
    from worker.tasks import input_errors

    assert issubclass(DeviceSettingError, input_errors())
