"""MLflow export (issue 12 item 7, issue 17 item 1): a real tiny job run by the worker with a
tracking URI set is logged to a real local MLflow store (sqlite, mlflow-skinny): the spec as
params, every recorded curve as metric histories against step, the report, plot and masks (and
checkpoints when asked) as artifacts, and a job event naming the run. A store that cannot be
reached is a warning and an event; a store that rejects the request is an error."""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from persistence.repositories import JobRepository, MetricRepository
from persistence.settings import Settings, WorkerSettings
from persistence.tables import EventKind, Job, JobStatus
from srcore.jobspec.results import SearchResult
from tests.worker.conftest import RecordingSender
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.mlflow_export import (
    CurvePoint,
    export_finished_job,
    external_cause,
    series_name,
    shown_uri,
)
from worker.tasks import Outcome, WorkerContext, execute_job

mlflow = pytest.importorskip(
    "mlflow", reason="mlflow is not installed (pip install 'srnet[mlflow]' to test the export)"
)
from mlflow.exceptions import MlflowException, RestException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402


@dataclass
class Finished:
    ctx: WorkerContext
    job: Job
    result: SearchResult  # read back from the kept work folder, as the worker had it
    uri: str
    client: MlflowClient
    run_id: str


def store_uri(folder: Path) -> str:
    return f"sqlite:///{folder / 'mlflow.db'}"


def job_events(ctx: WorkerContext, job_id: uuid.UUID) -> list:
    with ctx.database.session() as session:
        return [e for e in JobRepository(session).events.list(job_id) if e.kind == EventKind.log]


@pytest.fixture(scope="module")
def finished(
    tmp_path_factory: pytest.TempPathFactory,
    sqlite_template: Path,
    tiny_model_dir: Path,
    data_root: Path,
) -> Iterator[Finished]:
    """One tiny job run by the worker with MLflow on: the run it logged and its result."""
    import torch

    root = tmp_path_factory.mktemp("mlflow-job")
    shutil.copyfile(sqlite_template, root / "srnet.db")
    uri = store_uri(root)
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{root / 'srnet.db'}",
        data_roots=[str(data_root)],
        broker_url="redis://127.0.0.1:1/0",  # never used: the sender is replaced
        artifact_store=f"file://{root / 'artifacts'}",
    )
    worker_settings = WorkerSettings(
        _env_file=None,
        work_dir=root / "work",
        heartbeat_interval_s=0.1,
        progress_interval_s=0.0,
        keep_work_dir=True,  # the later tests export the same result again
        mlflow_tracking_uri=uri,
        mlflow_experiment="srnet-test",
        mlflow_artifact_location=str(root / "mlartifacts"),
    )
    ctx = WorkerContext.create(settings, worker_settings, RecordingSender())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model on a small shared machine: one thread is fastest
    try:
        job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir))
        assert execute_job(str(job_id), ctx) is Outcome.succeeded
    finally:
        torch.set_num_threads(threads)
    with ctx.database.session() as session:
        job = JobRepository(session).get(job_id)
        session.expunge(job)
    (logged,) = [e for e in job_events(ctx, job_id) if "mlflow" in (e.data or {})]
    client = MlflowClient(uri)
    yield Finished(
        ctx,
        job,
        SearchResult.read(worker_settings.job_dir(job_id)),
        uri,
        client,
        logged.data["mlflow"]["run_id"],
    )
    ctx.close()


@pytest.mark.slow
def test_a_succeeded_job_is_one_mlflow_run(finished: Finished):
    ctx, job, client, run_id = finished.ctx, finished.job, finished.client, finished.run_id
    assert job.status == JobStatus.succeeded
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert job.name is None and run.info.run_name == str(job.id)  # an unnamed job: its id
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.name == "srnet-test"
    assert experiment.artifact_location.endswith("mlartifacts")
    tags = run.data.tags
    assert tags["srnet.job_id"] == str(job.id) and tags["srnet.spec_hash"] == job.spec_hash
    assert (tags["srnet.loss"], tags["srnet.method"], tags["srnet.task"]) == (
        "poe",
        "mask_training",
        "mnli",
    )
    assert run.data.params["pruning.sparsities"] == "[0.5]"
    assert run.data.params["training.learning_rate"] == "0.01"
    assert run.data.params["model.name_or_path"] == job.spec["model"]["name_or_path"]

    # Every recorded evaluation is a point of its series, at its step, with its value.
    with ctx.database.session() as session:
        recorded = MetricRepository(session).list(job.id)
    search = [m for m in recorded if m.stage == "search"]
    dev = client.get_metric_history(run_id, "search/seed1/sparsity0.50/dev.accuracy")
    assert [(p.step, p.value) for p in dev] == [
        (m.step, pytest.approx(m.payload["dev"]["accuracy"])) for m in search
    ]
    assert [p.step for p in dev] == [2, 4, 6, 8]
    dense = client.get_metric_history(run_id, "dense/seed1/sparsity0.00/dev.accuracy")
    assert [p.step for p in dense] == [2, 4]
    nested = "search/seed1/sparsity0.50/hans.heuristics.lexical_overlap.non_entailed"
    assert client.get_metric_history(run_id, nested)[-1].value == pytest.approx(
        search[-1].payload["hans"]["heuristics"]["lexical_overlap"]["non_entailed"]
    )
    assert "search/seed1/sparsity0.50/train_loss" in run.data.metrics
    assert "search/seed1/sparsity0.50/dev.collapsed" not in run.data.metrics  # flags: no curve

    # The report, the plot and the mask, byte for byte; no checkpoint unless asked for.
    report = {a.path for a in client.list_artifacts(run_id, "report")}
    assert report == {"report/metrics.json", "report/report.png"}
    (mask,) = client.list_artifacts(run_id, "masks")
    assert mask.path == "masks/mask-0.50.safetensors"
    assert mask.file_size == finished.result.masks[0].stat().st_size
    assert client.list_artifacts(run_id, "checkpoints") == []
    (event,) = [e for e in job_events(ctx, job.id) if "mlflow" in (e.data or {})]
    assert event.message == f"logged to MLflow: run {run_id} in experiment 'srnet-test'"


@pytest.mark.slow
def test_checkpoints_are_logged_when_asked(finished: Finished):
    settings = finished.ctx.worker_settings.model_copy(update={"mlflow_checkpoints": True})
    run_id = export_finished_job(finished.ctx.database, finished.job, finished.result, settings)
    assert run_id is not None and run_id != finished.run_id
    (folder,) = finished.client.list_artifacts(run_id, "checkpoints")
    assert folder.path == "checkpoints/sparsity-0.50" and folder.is_dir
    inside = {a.path.rsplit("/", 1)[1] for a in finished.client.list_artifacts(run_id, folder.path)}
    assert {"config.json", "model.safetensors"} <= inside


@pytest.mark.slow
def test_an_unreachable_server_is_a_warning_and_an_event_not_a_failure(
    finished: Finished, monkeypatch, caplog
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    settings = finished.ctx.worker_settings.model_copy(
        update={"mlflow_tracking_uri": "http://user:secret@127.0.0.1:1"}  # nobody listens
    )
    before = len(job_events(finished.ctx, finished.job.id))
    with caplog.at_level(logging.WARNING, logger="worker.mlflow_export"):
        run_id = export_finished_job(finished.ctx.database, finished.job, finished.result, settings)
    assert run_id is None
    assert "not logged to MLflow at http://127.0.0.1:1" in caplog.text
    assert "secret" not in caplog.text
    events = job_events(finished.ctx, finished.job.id)[before:]
    (event,) = events
    assert event.message.startswith("not logged to MLflow at http://127.0.0.1:1: ")
    assert "Connection refused" in event.data["mlflow"]["error"]


@pytest.mark.slow
def test_a_store_that_rejects_the_request_is_an_error_not_a_warning(finished: Finished):
    """A deleted experiment is no I/O failure: the export raises instead of hiding it."""
    name = "deleted-experiment"
    experiment_id = finished.client.create_experiment(name)
    finished.client.delete_experiment(experiment_id)
    settings = finished.ctx.worker_settings.model_copy(update={"mlflow_experiment": name})
    with pytest.raises(MlflowException) as raised:
        export_finished_job(finished.ctx.database, finished.job, finished.result, settings)
    assert external_cause(raised.value) is None


@pytest.mark.slow
def test_a_missing_result_file_is_an_error(finished: Finished, tmp_path: Path):
    """The bug the export had: a result it cannot read must raise, not become a warning."""
    out = tmp_path / "copy"
    shutil.copytree(finished.result.out_dir, out)
    result = SearchResult.read(out)
    result.masks[0].unlink()
    before = len(job_events(finished.ctx, finished.job.id))
    with pytest.raises(FileNotFoundError, match=r"mask-0\.50\.safetensors"):
        export_finished_job(
            finished.ctx.database, finished.job, result, finished.ctx.worker_settings
        )
    assert len(job_events(finished.ctx, finished.job.id)) == before


def test_which_failures_are_external():
    refused = MlflowException("API request failed")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert isinstance(external_cause(refused), ConnectionRefusedError)
    unavailable = RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"})
    assert external_cause(unavailable) is unavailable
    denied = RestException({"error_code": "PERMISSION_DENIED", "message": "no"})
    assert external_cause(denied) is denied
    bad = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"})
    assert external_cause(bad) is None
    assert external_cause(TypeError("'list' object is not callable")) is None
    assert external_cause(KeyError("dev")) is None


def test_settings_read_mlflows_own_variable_and_refuse_without_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert WorkerSettings(_env_file=None).mlflow_tracking_uri == "http://mlflow:5000"
    monkeypatch.setenv("SRNET_MLFLOW_TRACKING_URI", "sqlite:///x.db")
    assert WorkerSettings(_env_file=None).mlflow_tracking_uri == "sqlite:///x.db"
    monkeypatch.setenv("SRNET_MLFLOW_CHECKPOINTS", "1")
    monkeypatch.setenv("SRNET_MLFLOW_EXPERIMENT", "lab")
    worker = WorkerSettings(_env_file=None)
    assert worker.mlflow_checkpoints is True and worker.mlflow_experiment == "lab"

    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"MLFLOW_TRACKING_URI.*pip install 'srnet\[mlflow\]'"):
        WorkerSettings(_env_file=None)
    monkeypatch.delenv("SRNET_MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert WorkerSettings(_env_file=None).mlflow_tracking_uri is None  # off: nothing checked


def test_series_names_keep_curves_apart():
    point = CurvePoint("dense", 2, None, 5, {})
    assert series_name(point, "dev.accuracy") == "dense/seed2/dev.accuracy"
    search = CurvePoint("search", 1, 0.7, 5, {})
    assert series_name(search, "hans.accuracy") == "search/seed1/sparsity0.70/hans.accuracy"


def test_shown_uri_drops_credentials():
    assert shown_uri("https://u:p@mlflow.lab:5000/x") == "https://mlflow.lab:5000/x"
    assert shown_uri("sqlite:////srv/mlflow.db") == "sqlite:////srv/mlflow.db"
