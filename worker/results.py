"""A finished search's results into the service: artifacts (masks inline; checkpoint archives,
with export.onnx ONNX archives, metrics.json and the plot in the artifact store; each with its
sha256) and the selected point of every metric curve. Everything comes from srcore's typed
`SearchResult`; file names from `srcore.jobspec.layout`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from persistence.artifacts import ArtifactStore, StoredObject, artifact_key
from persistence.repositories import ArtifactRepository, MetricRepository
from persistence.tables import ArtifactKind
from srcore.jobspec.layout import artifact_names, job_tag, report_names
from srcore.jobspec.results import SearchResult, evaluation_payload
from worker.reporting import MetricKey, curve_key, json_safe, key_of

log = logging.getLogger(__name__)


def write_tar(source: Path, destination: Path, root: str) -> None:
    """`source`'s files under `root/` in a plain tar (no owner names or ids leak out), byte-
    deterministic: files in sorted order, no times (mtime 0), modes 0644/0755, so identical
    checkpoints get identical sha256."""

    def scrub(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        info.mode = 0o755 if info.isdir() else 0o644
        info.pax_headers = {}
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
    store: ArtifactStore, job_id: uuid.UUID, result: SearchResult, name: str | None = None
) -> UploadedResults:
    """Store the bytes of every unit's mask and checkpoint, metrics.json and the plot. File
    names start with the job's `name` (a study child's "study · setting", which its spec does
    not carry), else its spec's."""
    uploaded = UploadedResults([], store)
    out_dir = result.out_dir
    job = job_tag(job_id, name or result.spec.get("name"))
    report_name, plot_name = report_names(job)
    try:
        for unit in result.units:
            seed, sparsity = unit.seed, unit.sparsity
            names = artifact_names(job, seed, sparsity)
            data = unit.mask.read_bytes()
            uploaded.artifacts.append(PlannedArtifact(
                ArtifactKind.mask, names.mask, len(data),
                hashlib.sha256(data).hexdigest(), "application/octet-stream", seed, sparsity,
                data=data,
            ))  # fmt: skip
            archive = out_dir / f".{names.checkpoint}.tmp"
            try:
                write_tar(unit.checkpoint, archive, root=names.checkpoint_root)
                uploaded.artifacts.append(
                    _put(
                        store,
                        job_id,
                        archive,
                        ArtifactKind.checkpoint,
                        names.checkpoint,
                        "application/x-tar",
                        ".tar",
                        seed,
                        sparsity,
                    )
                )
            finally:  # fmt: skip
                archive.unlink(missing_ok=True)
            if unit.onnx is not None:
                uploaded.artifacts.append(_put_tar(
                    store, job_id, unit.onnx.folder, out_dir / f".{names.onnx}.tmp",
                    ArtifactKind.onnx, names.onnx, names.onnx_root, seed, sparsity,
                ))  # fmt: skip

        # The report users download names artifacts, not the worker's folders.
        metrics_file = out_dir / ".metrics-public.json.tmp"
        metrics_file.write_text(json.dumps(result.public_report(job), indent=1, sort_keys=True))
        try:
            uploaded.artifacts.append(
                _put(
                    store,
                    job_id,
                    metrics_file,
                    ArtifactKind.report,
                    report_name,
                    "application/json",
                    ".json",
                )
            )
        finally:  # fmt: skip
            metrics_file.unlink(missing_ok=True)
        if result.plot_path.exists():
            uploaded.artifacts.append(_put(store, job_id, result.plot_path, ArtifactKind.plot,
                                           plot_name, "image/png", ".png"))  # fmt: skip
    except BaseException:
        uploaded.discard()
        raise
    return uploaded


def _put_tar(
    store: ArtifactStore,
    job_id: uuid.UUID,
    folder: Path,
    archive: Path,
    kind: ArtifactKind,
    name: str,
    root: str,
    seed: int,
    sparsity: float,
) -> PlannedArtifact:
    """`folder` as a deterministic tar (unpacking to `root/`) in the store."""
    try:
        write_tar(folder, archive, root=root)
        return _put(store, job_id, archive, kind, name, "application/x-tar", ".tar", seed,
                    sparsity)  # fmt: skip
    finally:
        archive.unlink(missing_ok=True)


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


def record_selected_points(session: Session, job_id: uuid.UUID, result: SearchResult) -> int:
    """Complete every curve of the result (points written by an earlier attempt are kept;
    missing ones, e.g. a dense fine-tune reused from the stage cache, are added) and mark the
    selected point of each; a unit's selected point also gets the unit's mask `movement` (how
    far it moved from magnitude pruning; a study's table reads it from there). Answers how many
    points were marked. The caller commits."""
    metrics = MetricRepository(session)
    rows: dict[MetricKey, int] = {key_of(m): m.id for m in metrics.list(job_id)}
    movement = {unit.curve: unit.movement for unit in result.units if unit.movement}
    marked = 0
    for curve in result.curves():
        for entry in curve.history:
            key = curve_key(curve.id, entry.step)
            if key not in rows:
                metric = metrics.add(job_id, stage=key[0], step=key[3], seed=key[1],
                                     sparsity=key[2],
                                     payload=json_safe(evaluation_payload(entry)))  # fmt: skip
                rows[key] = metric.id
        if curve.selected_step is None:
            continue
        key = curve_key(curve.id, curve.selected_step)
        if key not in rows:
            log.warning("job %s: selected point %s is not in the curve", job_id, key)
            continue
        metrics.select(rows[key])
        if curve.id in movement:
            metrics.merge_payload(rows[key], {"movement": json_safe(movement[curve.id])})
        marked += 1
    return marked
