"""export.onnx through the worker: each unit's ONNX folder is stored as an artifact of kind
onnx (a tar under the job's file names), and the published metrics.json names it and carries
the accuracy ONNX Runtime recomputed beside the PyTorch numbers."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from persistence.repositories import ArtifactRepository
from srcore.jobspec.layout import artifact_names, job_tag, report_names
from tests.worker.test_run_job import artifact_bytes, one_cpu  # noqa: F401
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.tasks import Outcome, execute_job


@pytest.mark.slow
def test_a_job_with_onnx_stores_the_onnx_model_as_an_artifact(worker_context, tiny_model_dir):
    ctx = worker_context
    spec = tiny_job_spec(tiny_model_dir, search_steps=4, dense_steps=2)
    spec["export"] = {"onnx": "fp32", "measure": False}
    job_id = create_job(ctx.database, spec)
    assert execute_job(str(job_id), ctx) is Outcome.succeeded

    with ctx.database.session() as session:
        repo = ArtifactRepository(session)
        artifacts = repo.list(job_id)
        inline = {a.id: repo.read_inline(a.id) for a in artifacts}
    job = job_tag(job_id, "tiny")
    names = artifact_names(job, 1, 0.5)
    by_name = {a.name: a for a in artifacts}
    onnx = by_name[names.onnx]
    assert onnx.kind == "onnx" and (onnx.seed, onnx.sparsity) == (1, 0.5)
    assert onnx.content_type == "application/x-tar" and onnx.storage_key is not None
    with tarfile.open(fileobj=io.BytesIO(artifact_bytes(ctx, onnx, inline))) as tar:
        members = set(tar.getnames())
    root = names.onnx_root
    assert {f"{root}/model.onnx", f"{root}/config.json", f"{root}/README.md"} <= members

    report = json.loads(artifact_bytes(ctx, by_name[report_names(job).report], inline))
    unit = report["results"][0]
    assert unit["onnx"]["folder"] == names.onnx  # the artifact, not the worker's folder
    assert unit["measured"] == "not measured"
    for name, values in unit["onnx"]["metrics"].items():
        assert abs(values["accuracy"] - unit["metrics"][name]["accuracy"]) <= 0.005
