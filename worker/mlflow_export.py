"""Optional experiment tracking: with MLFLOW_TRACKING_URI set (and the `srnet[mlflow]` extra,
mlflow-skinny, installed), the worker logs each finished job to MLflow as one run: the spec as
params, every recorded metric curve (each evaluated set's numbers against step, one series per
stage, seed and sparsity), and the report, plot and masks as artifacts (checkpoints too with
SRNET_MLFLOW_CHECKPOINTS=1; they are large). A failure to log never fails the job."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPERIMENT_ENV = "SRNET_MLFLOW_EXPERIMENT"  # default: "srnet"
CHECKPOINTS_ENV = "SRNET_MLFLOW_CHECKPOINTS"
MAX_PARAM_LENGTH = 6000  # MLflow's bound on a param value


@dataclass(frozen=True)
class CurvePoint:
    stage: str
    seed: int | None
    sparsity: float | None
    step: int
    payload: Mapping[str, Any]


def tracking_uri() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


def flat(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists as their JSON-ish text (params) or left out (metrics
    filter numbers later)."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat(value, f"{name}."))
        else:
            out[name] = value
    return out


def series_name(point: CurvePoint, metric: str) -> str:
    """`search/seed1/sparsity0.50/dev.accuracy`: one MLflow metric per curve and number."""
    parts = [point.stage]
    if point.seed is not None:
        parts.append(f"seed{point.seed}")
    if point.sparsity is not None:
        parts.append(f"sparsity{point.sparsity:.2f}")
    return "/".join([*parts, metric])


def _numbers(payload: Mapping[str, Any]) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in flat(payload).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def log_job(
    *,
    uri: str,
    job_id: str,
    name: str | None,
    spec: Mapping[str, Any],
    spec_hash: str,
    points: Iterable[CurvePoint],
    files: Sequence[tuple[Path, str]],
    experiment: str | None = None,
) -> str:
    """One MLflow run for the job; answers its run id. `files`: (path, artifact folder)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_name = experiment or os.environ.get(EXPERIMENT_ENV) or "srnet"
    found = client.get_experiment_by_name(experiment_name)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment_name)
    tags = {
        "srnet.job_id": job_id,
        "srnet.spec_hash": spec_hash,
        "srnet.task": str(spec.get("task")),
        "srnet.loss": str((spec.get("debias") or {}).get("loss")),
        "srnet.method": str((spec.get("pruning") or {}).get("method")),
        "mlflow.runName": name or job_id,
    }
    run = client.create_run(experiment_id, tags=tags)
    run_id = run.info.run_id
    params = [
        mlflow.entities.Param(key, str(value)[:MAX_PARAM_LENGTH])
        for key, value in sorted(flat(spec).items())
    ]
    metrics = [
        mlflow.entities.Metric(series_name(point, metric), value, 0, point.step)
        for point in points
        for metric, value in sorted(_numbers(point.payload).items())
    ]
    # log_batch takes at most 100 params and 1000 metrics a call.
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    for path, folder in files:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), f"{folder}/{path.name}")
        elif path.is_file():
            client.log_artifact(run_id, str(path), folder)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def result_files(result: Any) -> list[tuple[Path, str]]:
    """What of a SearchResult goes to MLflow: the report and plot, the masks; checkpoints only
    with SRNET_MLFLOW_CHECKPOINTS=1."""
    files = [(result.metrics_path, "report"), (result.plot_path, "report")]
    files += [(mask, "masks") for mask in result.masks()]
    if os.environ.get(CHECKPOINTS_ENV, "").lower() in ("1", "true", "yes"):
        files += [(checkpoint, "checkpoints") for checkpoint in result.checkpoints()]
    return files


def export_finished_job(database: Any, job: Any, result: Any) -> str | None:
    """The worker's hook after a job succeeded: nothing without MLFLOW_TRACKING_URI; a
    warning, not a failure, when MLflow is missing or refuses."""
    uri = tracking_uri()
    if uri is None:
        return None
    try:
        from persistence.repositories import MetricRepository

        with database.session() as session:
            points = [
                CurvePoint(m.stage, m.seed, m.sparsity, m.step, m.payload)
                for m in MetricRepository(session).list(job.id)
            ]
        return log_job(
            uri=uri,
            job_id=str(job.id),
            name=job.name,
            spec=job.spec,
            spec_hash=job.spec_hash,
            points=points,
            files=result_files(result),
        )
    except ImportError:
        log.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed: pip install "
                    "'srnet[mlflow]'; job %s was not logged", job.id)  # fmt: skip
    except Exception:
        log.warning("job %s: logging to MLflow at %s failed", job.id, uri, exc_info=True)
    return None
