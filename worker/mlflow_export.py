"""Optional experiment tracking: with SRNET_MLFLOW_TRACKING_URI (or MLflow's own
MLFLOW_TRACKING_URI) set and the `srnet[mlflow]` extra (mlflow-skinny) installed, the worker logs
each succeeded job to MLflow as one run: the spec as params, every recorded metric curve (each
evaluated set's numbers against step, one series per stage, seed and sparsity), and the report,
plot and masks as artifacts (the checkpoints too with SRNET_MLFLOW_CHECKPOINTS=1; they are
large).

The job has succeeded (and is committed) before the export starts, so the export never fails
it. A tracking store that cannot be reached or written (connection refused, a server answering
5xx or refusing the credentials, a full disk, an unopenable database file) is external: it is
logged as a warning and recorded as a `log` event of the job, which the user sees. Anything
else (a bad argument, a bug of ours, a store that rejects what we send) propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.exc import OperationalError

from persistence.db import Database
from persistence.repositories import JobEventRepository, MetricRepository
from persistence.settings import WorkerSettings
from persistence.tables import EventKind, Job
from srcore.jobspec.results import SearchResult

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

MAX_PARAM_LENGTH = 6000  # MLflow's bound on a param value
PARAMS_PER_BATCH, METRICS_PER_BATCH = 100, 1000  # log_batch's bounds per call
# HTTP statuses of a tracking server's answer that say "not now / not you", not "bad request".
EXTERNAL_HTTP_STATUSES = frozenset({401, 403, 429})


@dataclass(frozen=True)
class CurvePoint:
    stage: str
    seed: int | None
    sparsity: float | None
    step: int
    payload: Mapping[str, Any]


def flat(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (lists stay values: params show their text, metrics drop
    them)."""
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


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def log_job(
    *,
    uri: str,
    job_id: str,
    name: str | None,
    spec: Mapping[str, Any],
    spec_hash: str,
    points: Iterable[CurvePoint],
    files: Sequence[tuple[Path, str]],
    experiment: str = "srnet",
    artifact_location: str | None = None,
) -> str:
    """One MLflow run for the job; answers its run id. `files`: (path, artifact folder); a
    folder is logged with its content under `<folder>/<its name>`."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, experiment, artifact_location)
    tags = {
        "srnet.job_id": job_id,
        "srnet.spec_hash": spec_hash,
        "srnet.task": str(spec.get("task")),
        "srnet.loss": str((spec.get("debias") or {}).get("loss")),
        "srnet.method": str((spec.get("pruning") or {}).get("method")),
        "mlflow.runName": name or job_id,
    }
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    params = [
        Param(key, str(value)[:MAX_PARAM_LENGTH]) for key, value in sorted(flat(spec).items())
    ]
    metrics = [
        Metric(series_name(point, metric), value, 0, point.step)
        for point in points
        for metric, value in sorted(_numbers(point.payload).items())
    ]
    for start in range(0, len(params), PARAMS_PER_BATCH):
        client.log_batch(run_id, params=params[start : start + PARAMS_PER_BATCH])
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + METRICS_PER_BATCH])
    for path, folder in files:
        if path.is_dir():
            client.log_artifacts(run_id, str(path), f"{folder}/{path.name}")
        else:
            client.log_artifact(run_id, str(path), folder)
    client.set_terminated(run_id, "FINISHED")
    return run_id


def result_files(result: SearchResult, *, checkpoints: bool) -> list[tuple[Path, str]]:
    """What of a SearchResult goes to MLflow: the report and plot, the masks, and the
    checkpoint folders when asked for."""
    files = [(result.metrics_path, "report"), (result.plot_path, "report")]
    files += [(mask, "masks") for mask in result.masks]
    if checkpoints:
        files += [(checkpoint, "checkpoints") for checkpoint in result.checkpoints]
    # Checked before MLflow is called: a file the result names and lacks is our bug, and it
    # must not pass for the store's I/O failure (both are OSErrors).
    missing = [str(path) for path, _ in files if not path.exists()]
    if missing:
        raise FileNotFoundError(f"the result names files that are not there: {missing}")
    return files


def external_cause(exc: BaseException) -> BaseException | None:
    """The I/O failure behind `exc`, if it is one: an OSError (refused or dropped connections
    — requests' errors are OSErrors —, timeouts, disks) or a database that cannot be opened
    anywhere in its cause chain, or a tracking server's answer that it is unavailable or
    refuses our credentials. None: not external (a bug, or a request the store rejects)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | OperationalError):
            return current
        if _server_unavailable(current):
            return current
        current = current.__cause__ or current.__context__
    return None


def _server_unavailable(exc: BaseException) -> bool:
    try:
        from mlflow.exceptions import RestException
    except ImportError:  # without mlflow nothing it raises can reach here
        return False
    if not isinstance(exc, RestException):
        return False
    status = exc.get_http_status_code()
    return status >= 500 or status in EXTERNAL_HTTP_STATUSES


def shown_uri(uri: str) -> str:
    """The tracking URI without credentials (user:password@host), for logs and events."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def export_finished_job(
    database: Database, job: Job, result: SearchResult, settings: WorkerSettings
) -> str | None:
    """The worker's hook after a job succeeded: its MLflow run id; None without a tracking
    URI, or when the store could not be reached (then a warning and a job event say why)."""
    uri = settings.mlflow_tracking_uri
    if uri is None:
        return None
    with database.session() as session:
        points = [
            CurvePoint(m.stage, m.seed, m.sparsity, m.step, m.payload)
            for m in MetricRepository(session).list(job.id)
        ]
    files = result_files(result, checkpoints=settings.mlflow_checkpoints)
    try:
        run_id = log_job(
            uri=uri,
            job_id=str(job.id),
            name=job.name,
            spec=job.spec,
            spec_hash=job.spec_hash,
            points=points,
            files=files,
            experiment=settings.mlflow_experiment,
            artifact_location=settings.mlflow_artifact_location,
        )
    except Exception as exc:
        cause = external_cause(exc)
        if cause is None:
            raise
        reason = f"{type(cause).__name__}: {cause}"[:500]
        log.warning("job %s: not logged to MLflow at %s: %s", job.id, shown_uri(uri), reason)
        message = f"not logged to MLflow at {shown_uri(uri)}: {reason}"
        _note(database, job, message, {"mlflow": {"error": reason}})
        return None
    experiment = settings.mlflow_experiment
    message = f"logged to MLflow: run {run_id} in experiment {experiment!r}"
    _note(database, job, message, {"mlflow": {"run_id": run_id, "experiment": experiment}})
    return run_id


def _note(database: Database, job: Job, message: str, data: dict[str, Any]) -> None:
    with database.session() as session:
        JobEventRepository(session).add(job.id, EventKind.log, message=message, data=data)
        session.commit()
