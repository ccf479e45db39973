"""A real SRNet API on a loopback port (uvicorn in a thread, SQLite migrated with Alembic, a
local artifact store) and a stand-in worker that writes through the persistence repositories,
as the Celery worker does. Shared by tests/client and tests/web."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from api.main import create_app
from persistence.artifacts import LocalArtifactStore, artifact_key
from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key
from persistence.repositories import ArtifactRepository, JobRepository, MetricRepository
from persistence.settings import Settings
from persistence.tables import ArtifactKind, JobStatus
from srcore.jobspec.layout import artifact_names, job_tag, report_names


class NullEnqueuer:
    """No broker in these tests: the stand-in worker below runs the jobs."""

    def __init__(self) -> None:
        self.sent: list[tuple[uuid.UUID, str]] = []

    def send(self, job_id: uuid.UUID, queue: str) -> None:
        self.sent.append((job_id, queue))

    def ping(self) -> None:
        return None


@dataclass
class LiveService:
    url: str
    database: Database
    store: LocalArtifactStore
    enqueuer: NullEnqueuer
    port: int
    keys: dict[str, str] = field(default_factory=dict)

    def key_for(self, owner: str) -> str:
        """The API key of `owner` (created on first use with persistence.keys)."""
        if owner not in self.keys:
            with self.database.session() as session:
                created = create_api_key(session, owner)
                session.commit()
                self.keys[owner] = created.key
        return self.keys[owner]

    def worker(self, job_id: str | uuid.UUID) -> FakeWorker:
        return FakeWorker(self.database, self.store, uuid.UUID(str(job_id)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def run_service(tmp_path: Path) -> Iterator[LiveService]:
    database_url = f"sqlite:///{tmp_path / 'srnet.db'}"
    upgrade_database(database_url)  # = alembic upgrade head
    store = LocalArtifactStore(tmp_path / "artifacts")
    settings = Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        broker_url="redis://127.0.0.1:1/0",  # never used: the enqueuer is replaced
        artifact_store=f"file://{tmp_path / 'artifacts'}",
        sse_poll_interval_s=0.05,
        sse_keepalive_s=1.0,
        download_chunk_bytes=16 * 1024,
    )
    enqueuer = NullEnqueuer()
    app = create_app(settings, enqueuer=enqueuer, artifact_store=store)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    database = Database(database_url)
    try:
        yield LiveService(f"http://127.0.0.1:{port}", database, store, enqueuer, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        database.dispose()
        sock.close()


# --- a stand-in worker -------------------------------------------------------------------------


def movement_payload(differ: float) -> dict[str, Any]:
    """A mask's movement as srcore.pruning.movement reports it: `differ` of the entries differ
    from magnitude pruning in total; per type, the query matrices twice as much, the rest half
    (two layers)."""

    def group(fraction: float) -> dict[str, Any]:
        return {
            "entries": 1000,
            "differ_from_magnitude": round(1000 * fraction),
            "flipped_from_init": round(2000 * fraction),
            "differ_fraction": fraction,
            "flipped_fraction": 2 * fraction,
        }

    kinds = ("Q", "K", "V", "AO", "I", "O")
    types = {t: group(2 * differ if t == "Q" else differ / 2) for t in kinds}
    layers = {"0": group(differ), "1": group(differ)}
    return {**group(differ), "by_type": types, "by_layer": layers}


def metric_payload(
    dev: float, hans: float | None = None, *, sparsity: float | None = None, spread: float = 0.0
) -> dict[str, Any]:
    """What srcore's evaluate_fn reports (plus the trainer's extras) for an MNLI job."""
    payload: dict[str, Any] = {"dev": {"accuracy": dev, "n": 400}, "selection": dev}
    if hans is not None:
        payload["hans"] = {
            "accuracy": hans,
            "entailed": min(1.0, hans + 0.3),
            "non_entailed": max(0.0, hans - 0.3),
            "heuristics": {
                name: {
                    "accuracy": hans + offset,
                    "entailed": min(1.0, hans + 0.35 + offset),
                    "non_entailed": max(0.0, hans - 0.35 + offset + spread),
                }
                for name, offset in (
                    ("lexical_overlap", -0.05),
                    ("subsequence", 0.0),
                    ("constituent", 0.03),
                )
            },
            "n": 3000,
        }
    if sparsity is not None:
        payload["sparsity"] = sparsity
    payload["train_loss"] = 0.42
    return payload


def tar_bytes(folder: Path, arcname: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(folder, arcname=arcname)
    return buffer.getvalue()


class FakeWorker:
    """Moves one job through its life with the same repository calls as the real worker."""

    def __init__(self, database: Database, store: LocalArtifactStore, job_id: uuid.UUID):
        self.database = database
        self.store = store
        self.job_id = job_id
        self.worker_id = f"fake-worker-{uuid.uuid4().hex[:6]}"

    def claim(self) -> None:
        with self.database.session() as session:
            job = JobRepository(session).claim(self.job_id, self.worker_id)
            assert job is not None, "the job could not be claimed"
            session.commit()

    def stage(self, stage: str, detail: str | None = None) -> None:
        with self.database.session() as session:
            JobRepository(session).set_stage(self.job_id, self.worker_id, stage, detail)
            session.commit()

    def progress(
        self,
        step: int,
        total: int,
        examples_per_s: float,
        eta_s: float,
        *,
        job_fraction: float | None = None,
        job_eta_s: float | None = None,
        phase: str = "train",
    ) -> None:
        with self.database.session() as session:
            JobRepository(session).update_progress(
                self.job_id,
                self.worker_id,
                step=step,
                total=total,
                examples_per_s=examples_per_s,
                eta_s=eta_s,
                job_fraction=job_fraction,
                job_eta_s=job_eta_s,
                phase=phase,
            )
            session.commit()

    def metric(
        self,
        stage: str,
        step: int,
        payload: dict[str, Any],
        *,
        seed: int | None = 1,
        sparsity: float | None = None,
        selected: bool = False,
    ) -> None:
        with self.database.session() as session:
            MetricRepository(session).add(
                self.job_id,
                stage=stage,
                step=step,
                payload=payload,
                seed=seed,
                sparsity=sparsity,
                selected=selected,
            )
            session.commit()

    def artifact(
        self,
        kind: ArtifactKind,
        name: str,
        data: bytes,
        *,
        seed: int | None = 1,
        sparsity: float | None = None,
        content_type: str = "application/octet-stream",
        inline: bool = False,
    ) -> uuid.UUID:
        artifact_id = uuid.uuid4()
        with self.database.session() as session:
            repository = ArtifactRepository(session)
            if inline:
                repository.add(
                    self.job_id,
                    kind=kind,
                    name=name,
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    data=data,
                    content_type=content_type,
                    seed=seed,
                    sparsity=sparsity,
                    artifact_id=artifact_id,
                )
            else:
                stored = self.store.put_bytes(artifact_key(self.job_id, artifact_id, ""), data)
                repository.add(
                    self.job_id,
                    kind=kind,
                    name=name,
                    size=stored.size,
                    sha256=stored.sha256,
                    storage_key=stored.key,
                    content_type=content_type,
                    seed=seed,
                    sparsity=sparsity,
                    artifact_id=artifact_id,
                )
            session.commit()
        return artifact_id

    def finish(self, status: JobStatus = JobStatus.succeeded, error: str | None = None) -> None:
        with self.database.session() as session:
            JobRepository(session).transition(
                self.job_id,
                status,
                worker_id=self.worker_id,
                error=error,
                message=f"job {status.value}",
            )
            session.commit()

    def run_search(
        self,
        sparsities: tuple[float, ...] = (0.5, 0.7),
        *,
        pause_s: float = 0.0,
        checkpoint: bytes | None = None,
        shift: float = 0.0,
    ) -> None:
        """A whole successful job: stages, progress, curves with a selected point per
        sparsity (and the dense model), a mask and a checkpoint per sparsity, the report.
        `shift` moves every accuracy (ID down, OOD up), to tell jobs apart."""
        self.claim()
        self.stage("dense", "seed 1")
        for step in (10, 20):
            self.metric(
                "dense",
                step,
                metric_payload(0.80 + step / 1000 - shift, 0.60 + shift),
                sparsity=None,
                selected=step == 20,
            )
        self.stage("search", "seed 1: mask_training, finetuned")
        total = 40 * len(sparsities)
        for index, sparsity in enumerate(sparsities):
            for step in (10, 20, 30, 40):
                done = index * 40 + step
                # the dense stage counts as the job's first fifth
                job_fraction = 0.2 + 0.75 * done / total
                self.progress(
                    done, total, 512.0, (total - done) / 10,
                    job_fraction=job_fraction, job_eta_s=(1 - job_fraction) * 100,
                )  # fmt: skip
                dev = 0.78 - 0.05 * index + step / 2000 - shift
                hans = 0.62 + 0.02 * index + step / 4000 + shift
                payload = metric_payload(dev, hans, sparsity=sparsity)
                if step == 30:  # the worker adds the mask's movement to its selected point
                    payload["movement"] = movement_payload(0.01 * (index + 1))
                self.metric("search", step, payload, sparsity=sparsity, selected=step == 30)
                if pause_s:
                    time.sleep(pause_s)
        self.stage("export", "report")
        job = job_tag(self.job_id)
        for sparsity in sparsities:
            names = artifact_names(job, 1, sparsity)
            self.artifact(
                ArtifactKind.mask,
                names.mask,
                bytes(range(256)) * 8,
                sparsity=sparsity,
                inline=True,
            )
            self.artifact(
                ArtifactKind.checkpoint,
                names.checkpoint,
                checkpoint or b"not a real checkpoint " * 1000,
                sparsity=sparsity,
                content_type="application/x-tar",
            )
        self.artifact(
            ArtifactKind.report,
            report_names(job).report,
            b'{"results": []}',
            seed=None,
            content_type="application/json",
        )
        self.finish()
