"""A finished search's results into the service: artifacts (masks inline, checkpoint archives,
metrics.json and the plot in the artifact store, each with its sha256) and the selected point of
every metric curve, read from metrics.json."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from persistence.artifacts import ArtifactStore, StoredObject, artifact_key
from persistence.repositories import ArtifactRepository, MetricRepository
from persistence.tables import ArtifactKind
from worker.reporting import DENSE_SPARSITY, MetricKey, json_safe, key_of, metric_key

log = logging.getLogger(__name__)


def sparsity_tag(sparsity: float) -> str:
    return f"{sparsity:.2f}"  # as srcore names its files (mask-0.50.safetensors)


def mask_name(seed: int, sparsity: float) -> str:
    return f"mask-seed{seed}-sparsity{sparsity_tag(sparsity)}.safetensors"


def checkpoint_name(seed: int, sparsity: float) -> str:
    return f"checkpoint-seed{seed}-sparsity{sparsity_tag(sparsity)}.tar"


def write_tar(source: Path, destination: Path, root: str) -> None:
    """`source`'s files under `root/` in a plain tar (no owner names or ids leak out)."""

    def scrub(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(source, arcname=root, recursive=False, filter=scrub)
        for path in sorted(source.rglob("*")):
            if path.is_file() or path.is_dir():
                tar.add(path, arcname=f"{root}/{path.relative_to(source).as_posix()}",
                        recursive=False, filter=scrub)  # fmt: skip


@dataclass
class PlannedArtifact:
    kind: ArtifactKind
    name: str
    size: int
    sha256: str
    content_type: str
    seed: int | None = None
    sparsity: float | None = None
    artifact_id: uuid.UUID = field(default_factory=uuid.uuid4)
    storage_key: str | None = None
    data: bytes | None = None


@dataclass
class UploadedResults:
    """Artifacts whose bytes are stored; their rows are added in the transaction that marks
    the job succeeded, so a job never shows half of its artifacts."""

    artifacts: list[PlannedArtifact]
    store: ArtifactStore

    def add_rows(self, session: Session, job_id: uuid.UUID) -> None:
        repo = ArtifactRepository(session)
        for a in self.artifacts:
            repo.add(job_id, kind=a.kind, name=a.name, size=a.size, sha256=a.sha256,
                     storage_key=a.storage_key, data=a.data, content_type=a.content_type,
                     seed=a.seed, sparsity=a.sparsity, artifact_id=a.artifact_id)  # fmt: skip

    def discard(self) -> None:
        """Remove stored bytes whose rows were never committed (cancelled, lost, failed)."""
        for a in self.artifacts:
            if a.storage_key is not None:
                with contextlib.suppress(Exception):
                    self.store.delete(a.storage_key)


def upload_results(
    store: ArtifactStore, job_id: uuid.UUID, out_dir: Path, report: dict[str, Any]
) -> UploadedResults:
    """Store the bytes of every artifact of `report`'s units, metrics.json and report.png."""
    uploaded = UploadedResults([], store)
    try:
        for unit in report["results"]:
            seed, sparsity = int(unit["seed"]), float(unit["sparsity"])
            data = Path(unit["mask"]).read_bytes()
            uploaded.artifacts.append(PlannedArtifact(
                ArtifactKind.mask, mask_name(seed, sparsity), len(data),
                hashlib.sha256(data).hexdigest(), "application/octet-stream", seed, sparsity,
                data=data,
            ))  # fmt: skip
            name = checkpoint_name(seed, sparsity)
            archive = out_dir / f".{name}.tmp"
            try:
                write_tar(Path(unit["checkpoint"]), archive, root=name.removesuffix(".tar"))
                uploaded.artifacts.append(_put(store, job_id, archive, ArtifactKind.checkpoint,
                                               name, "application/x-tar", ".tar", seed, sparsity))
            finally:  # fmt: skip
                archive.unlink(missing_ok=True)

        # The report users download names artifacts, not the worker's folders.
        public = dict(report)
        public["results"] = [
            {**u, "mask": mask_name(u["seed"], u["sparsity"]),
             "checkpoint": checkpoint_name(u["seed"], u["sparsity"])}
            for u in report["results"]
        ]  # fmt: skip
        metrics_file = out_dir / ".metrics-public.json.tmp"
        metrics_file.write_text(json.dumps(public, indent=1, default=str))
        try:
            uploaded.artifacts.append(_put(store, job_id, metrics_file, ArtifactKind.report,
                                           "metrics.json", "application/json", ".json"))
        finally:  # fmt: skip
            metrics_file.unlink(missing_ok=True)
        plot = out_dir / "report.png"
        if plot.exists():
            uploaded.artifacts.append(
                _put(store, job_id, plot, ArtifactKind.plot, "report.png", "image/png", ".png")
            )
    except BaseException:
        uploaded.discard()
        raise
    return uploaded


def _put(
    store: ArtifactStore,
    job_id: uuid.UUID,
    path: Path,
    kind: ArtifactKind,
    name: str,
    content_type: str,
    suffix: str,
    seed: int | None = None,
    sparsity: float | None = None,
) -> PlannedArtifact:
    artifact_id = uuid.uuid4()
    stored: StoredObject = store.put_file(artifact_key(job_id, artifact_id, suffix), path)
    return PlannedArtifact(kind, name, stored.size, stored.sha256, content_type, seed, sparsity,
                           artifact_id=artifact_id, storage_key=stored.key)  # fmt: skip


# --- selected points ---------------------------------------------------------------------------


@dataclass
class ReportCurve:
    stage: str
    seed: int
    sparsity: float
    history: list[dict[str, Any]]
    selected_step: int | None


def report_curves(report: dict[str, Any]) -> list[ReportCurve]:
    """Every evaluation curve metrics.json holds, with its selected step where it has one."""
    curves = [
        ReportCurve("dense", int(d["seed"]), DENSE_SPARSITY, d.get("history") or [],
                    d.get("selected_step"))
        for d in report.get("dense") or []
    ]  # fmt: skip
    for unit in report.get("results") or []:
        seed, sparsity = int(unit["seed"]), float(unit["sparsity"])
        if unit.get("search_history"):  # scenario 2: the mask's search before the retrain
            curves.append(ReportCurve("search", seed, sparsity, unit["search_history"], None))
        curves.append(ReportCurve(unit["stage"], seed, sparsity, unit.get("history") or [],
                                  unit.get("selected_step")))  # fmt: skip
    return curves


def history_payload(entry: dict[str, Any]) -> dict[str, Any]:
    """The payload `on_metrics` gets for an evaluation, rebuilt from a history entry."""
    return json_safe({**entry.get("metrics", {}), **(entry.get("info") or {}),
                      "train_loss": entry.get("train_loss")})  # fmt: skip


def record_selected_points(session: Session, job_id: uuid.UUID, report: dict[str, Any]) -> int:
    """Complete every curve from metrics.json (points written by an earlier attempt are kept;
    missing ones, e.g. a dense fine-tune reused from the stage cache, are added) and mark the
    selected point of each. Answers how many points were marked. The caller commits."""
    metrics = MetricRepository(session)
    rows: dict[MetricKey, int] = {key_of(m): m.id for m in metrics.list(job_id)}
    marked = 0
    for curve in report_curves(report):
        for entry in curve.history:
            key = metric_key(curve.stage, curve.seed, curve.sparsity, int(entry["step"]))
            if key not in rows:
                metric = metrics.add(job_id, stage=curve.stage, step=key[3], seed=curve.seed,
                                     sparsity=key[2], payload=history_payload(entry))  # fmt: skip
                rows[key] = metric.id
        if curve.selected_step is None:
            continue
        key = metric_key(curve.stage, curve.seed, curve.sparsity, int(curve.selected_step))
        if key not in rows:
            log.warning("job %s: selected point %s is not in the curve", job_id, key)
            continue
        metrics.select(rows[key])
        marked += 1
    return marked
