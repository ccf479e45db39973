"""A study child's artifact files carry its own name (issue 19 item 8): "study · setting" is
the job's name, not its spec's, and the files were named after the spec alone."""

from __future__ import annotations

import uuid

from persistence.keys import create_api_key
from persistence.repositories import ArtifactRepository, JobRepository
from srcore.jobspec.layout import job_tag
from tests.worker.tiny_job import tiny_job_spec
from worker.tasks import Outcome, execute_job


def test_a_childs_files_start_with_its_name_and_short_id(worker_context, tiny_model_dir):
    ctx = worker_context
    spec = tiny_job_spec(tiny_model_dir)  # its spec is named "tiny"
    with ctx.database.session() as session:
        owner = create_api_key(session, f"lab-{uuid.uuid4().hex[:8]}").owner
        job = JobRepository(session).create(
            owner_id=owner.id, spec=spec, spec_hash=uuid.uuid4().hex, queue="gpu",
            name="losses · loss poe",
        )  # fmt: skip
        session.commit()
        job_id = job.id
    assert execute_job(job_id, ctx) is Outcome.succeeded
    with ctx.database.session() as session:
        names = sorted(a.name for a in ArtifactRepository(session).list(job_id))
    prefix = job_tag(job_id, "losses · loss poe")
    assert prefix == f"losses-loss-poe-{job_id.hex[:8]}"
    assert names and all(name.startswith(prefix + "-") for name in names), names
