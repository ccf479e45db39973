"""MLflow export (issue 12 item 7): with MLFLOW_TRACKING_URI the worker's hook logs a finished
job to a real local MLflow file store: the spec as params, every recorded curve as metric
histories against step, the report, plot and masks as artifacts. Skips without mlflow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from persistence.db import Database, upgrade_database
from persistence.repositories import JobRepository, MetricRepository
from tests.persistence.fixtures import make_owner
from worker.mlflow_export import export_finished_job, series_name

mlflow = pytest.importorskip(
    "mlflow", reason="mlflow is not installed (pip install 'srnet[mlflow]' to test the export)"
)

SPEC = {"name": "poe-mlflow", "task": "mnli", "debias": {"loss": "poe"},
        "pruning": {"method": "mask_training", "sparsities": [0.5]},
        "training": {"seeds": [1], "learning_rate": 0.1}}  # fmt: skip


@dataclass
class FakeResult:
    """The parts of a SearchResult the export reads."""

    folder: Path

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.json"

    @property
    def plot_path(self) -> Path:
        return self.folder / "report.png"

    def masks(self) -> list[Path]:
        return [self.folder / "masks" / "seed-1" / "mask-0.50.safetensors"]

    def checkpoints(self) -> list[Path]:
        return [self.folder / "checkpoints" / "seed-1" / "sparsity-0.50"]


@pytest.fixture
def finished(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'srnet.db'}"
    upgrade_database(url)
    database = Database(url)
    owner, _ = make_owner(database)
    with database.session() as session:
        job = JobRepository(session).create(owner_id=owner, spec=SPEC, spec_hash="ab" * 32,
                                            name="poe-mlflow")  # fmt: skip
        metrics = MetricRepository(session)
        for step, dev in ((10, 0.70), (20, 0.74)):
            metrics.add(job.id, stage="search", step=step, seed=1, sparsity=0.5,
                        payload={"dev": {"accuracy": dev, "n": 100, "collapsed": False},
                                 "hans": {"accuracy": 0.6, "heuristics": {"lexical_overlap":
                                          {"non_entailed": 0.2}}}, "train_loss": 1 - dev},
                        selected=step == 20)  # fmt: skip
        session.commit()
        job = JobRepository(session).get(job.id)
        session.expunge(job)
    out = tmp_path / "out"
    (out / "masks" / "seed-1").mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"results": []}))
    (out / "report.png").write_bytes(b"\x89PNG not really")
    (out / "masks" / "seed-1" / "mask-0.50.safetensors").write_bytes(b"mask")
    (out / "checkpoints" / "seed-1" / "sparsity-0.50").mkdir(parents=True)
    (out / "checkpoints" / "seed-1" / "sparsity-0.50" / "config.json").write_text("{}")
    yield database, job, FakeResult(out)
    database.dispose()


def test_a_finished_job_is_one_mlflow_run(finished, tmp_path, monkeypatch):
    database, job, result = finished
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps it for local use
    run_id = export_finished_job(database, job, result)
    assert run_id is not None
    client = mlflow.tracking.MlflowClient(store.as_uri())
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "poe-mlflow"
    assert client.get_experiment(run.info.experiment_id).name == "srnet"
    assert run.data.tags["srnet.job_id"] == str(job.id) and run.data.tags["srnet.loss"] == "poe"
    assert run.data.params["pruning.sparsities"] == "[0.5]"
    assert run.data.params["training.learning_rate"] == "0.1"
    history = client.get_metric_history(run_id, "search/seed1/sparsity0.50/dev.accuracy")
    assert [(m.step, m.value) for m in history] == [(10, 0.70), (20, 0.74)]
    nested = "search/seed1/sparsity0.50/hans.heuristics.lexical_overlap.non_entailed"
    assert client.get_metric_history(run_id, nested)[0].value == pytest.approx(0.2)
    assert "search/seed1/sparsity0.50/dev.collapsed" not in run.data.metrics  # flags are no curve
    artifacts = {a.path for a in client.list_artifacts(run_id, "report")}
    assert artifacts == {"report/metrics.json", "report/report.png"}
    assert [a.path for a in client.list_artifacts(run_id, "masks")] == [
        "masks/mask-0.50.safetensors"]  # fmt: skip
    assert client.list_artifacts(run_id, "checkpoints") == []  # only when asked for

    monkeypatch.setenv("SRNET_MLFLOW_CHECKPOINTS", "1")
    again = export_finished_job(database, job, result)
    assert [a.path for a in client.list_artifacts(again, "checkpoints")] == [
        "checkpoints/sparsity-0.50"]  # fmt: skip


def test_no_uri_no_run_and_a_refusing_store_never_fails_the_job(finished, monkeypatch, caplog):
    database, job, result = finished
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert export_finished_job(database, job, result) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")  # nobody listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    assert export_finished_job(database, job, result) is None
    assert "logging to MLflow" in caplog.text


def test_series_names_keep_curves_apart():
    from worker.mlflow_export import CurvePoint

    point = CurvePoint("dense", 2, None, 5, {})
    assert series_name(point, "dev.accuracy") == "dense/seed2/dev.accuracy"
    search = CurvePoint("search", 1, 0.7, 5, {})
    assert series_name(search, "hans.accuracy") == "search/seed1/sparsity0.70/hans.accuracy"
