"""Workers on a real Slurm cluster (scripts/slurm-test-cluster: slurmctld + slurmd on loopback),
against the real PostgreSQL and Redis: `srnet serve --no-worker` (the API and the reconciler)
and `srnet slurm autoscale` run as the README says, and no worker runs until the autoscaler
asks Slurm for one.

1. A job submitted over HTTP is picked up by a worker the autoscaler started through sbatch;
   it succeeds and its checkpoint downloads (sha256 = ETag). The worker exits when idle, Slurm
   records it as finished, and the autoscaler is back at 0 worker tasks.
2. A worker killed by `scancel` mid-job loses nothing: Slurm's SIGTERM makes the job checkpoint
   and go back to the queue (the attempt is refunded: nobody's fault), the autoscaler starts
   another worker, which resumes from that checkpoint; the job succeeds once, every evaluation
   recorded once.

The measured scale-up latency (job queued -> worker task running through Slurm, -> job claimed)
and scale-down time (job finished -> worker task gone) are printed (pytest -s) and written to
SRNET_SLURM_TIMINGS when set.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from persistence.db import Database
from persistence.repositories import JobRepository
from persistence.tables import EventKind
from tests.integration.conftest import pg_url, redis_broker  # noqa: F401
from tests.worker.processes import TEST_WORKER_ENV, one_core, wait_for
from tests.worker.tiny_job import save_tiny_model, tiny_job_spec

pytestmark = [pytest.mark.slurm, pytest.mark.integration, pytest.mark.slow]

IDLE_S = 5  # the workers' --exit-when-idle
STEPS = 160  # the search steps of the job cancelled mid-way


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SlurmService:
    client: httpx.Client
    database: Database
    job_name: str
    state_dir: Path
    log_dir: Path
    serve_log: Path
    autoscale_log: Path
    env: dict[str, str]

    def tasks(self) -> list[tuple[str, str]]:
        """(job id, state) of this test's worker tasks in squeue."""
        out = subprocess.run(["squeue", "-h", "-r", "-n", self.job_name, "-o", "%i|%T"],
                             env=self.env, capture_output=True, text=True, check=True,
                             timeout=30).stdout  # fmt: skip
        return [tuple(line.split("|")) for line in out.split()]  # type: ignore[misc]

    def running(self) -> list[str]:
        return [job_id for job_id, state in self.tasks() if state == "RUNNING"]

    def logs(self) -> str:
        parts = [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                 for p in [self.serve_log, self.autoscale_log, *sorted(self.log_dir.glob("*.log"))]
                 if p.exists()]  # fmt: skip
        return "\n".join(parts)

    def status(self) -> str:
        return subprocess.run(
            [sys.executable, "-m", "srnet", "slurm", "status", "--job-name", self.job_name,
             "--queues", "gpu,cpu", "--state-dir", str(self.state_dir), "--decisions", "50"],
            env=self.env, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip

    def job(self, job_id: str) -> dict:
        return self.client.get(f"/jobs/{job_id}").json()

    def wait_job(self, job_id: str, timeout: float) -> dict:
        def finished():
            job = self.job(job_id)
            return job if job["status"] in ("succeeded", "failed", "cancelled") else None

        try:
            return wait_for(finished, timeout, f"job {job_id} to finish", interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.status()}\n{self.logs()}") from None


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def slurm_service(slurm_cluster, pg_url, redis_broker, tmp_path) -> Iterator[SlurmService]:  # noqa: F811
    key = "srn_" + secrets.token_urlsafe(32)
    job_name = f"srnet-test-{secrets.token_hex(3)}"
    state_dir, log_dir = tmp_path / "slurm", tmp_path / "slurm" / "logs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRNET_", "WORKER_"))}
    env.update(TEST_WORKER_ENV)
    env.update({
        "SLURM_CONF": str(slurm_cluster),
        "OMP_NUM_THREADS": "1",
        "SRNET_HOME": str(tmp_path / "home"),
        "SRNET_DATABASE_URL": pg_url,
        "SRNET_BROKER_URL": redis_broker.url,
        "SRNET_BROKER_KEY_PREFIX": redis_broker.prefix,
        "SRNET_ARTIFACT_STORE": f"file://{tmp_path / 'artifacts'}",
        # One work folder for every worker (a cluster's shared filesystem): a job resumes
        # on another worker from the checkpoint the first one wrote.
        "SRNET_WORK_DIR": str(tmp_path / "work"),
        "SRNET_DATA_ROOTS": json.dumps([str(tmp_path)]),
        "SRNET_BOOTSTRAP_API_KEY": key,
        "SRNET_HEARTBEAT_STALE_S": "10",
        "SRNET_RECONCILE_INTERVAL_S": "1",
    })  # fmt: skip
    port = free_port()
    serve_log, autoscale_log = tmp_path / "serve.log", tmp_path / "autoscale.log"
    with open(serve_log, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "srnet", "serve", "--no-worker", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=one_core,
        )  # fmt: skip
    autoscale = None
    database = Database(pg_url)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
    try:
        with open(autoscale_log, "wb") as log:
            autoscale = subprocess.Popen(
                [sys.executable, "-m", "srnet", "slurm", "autoscale",
                 "--min", "0", "--max", "2", "--interval", "1",
                 "--gpus-per-worker", "0", "--cpus-per-worker", "1", "--time", "30:00",
                 "--end-margin", "1m", "--exit-when-idle", f"{IDLE_S}s",
                 "--queues", "gpu,cpu", "--job-name", job_name,
                 "--state-dir", str(state_dir), "--log-dir", str(log_dir)],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for(lambda: "SRNet is serving" in serve_log.read_text() or serve.poll() is not None,
                 120, "srnet serve to come up")  # fmt: skip
        assert serve.poll() is None, serve_log.read_text()[-3000:]
        yield SlurmService(client, database, job_name, state_dir, log_dir, serve_log,
                           autoscale_log, env)  # fmt: skip
    finally:
        if autoscale is not None:
            _stop(autoscale)
        subprocess.run(["scancel", "-n", job_name], env=env, timeout=30, check=False)
        _stop(serve)
        client.close()
        database.dispose()


def _events(database: Database, job_id: str):
    import uuid

    with database.session() as session:
        return JobRepository(session).events.list(uuid.UUID(job_id))


def _search_checkpoints(database: Database, job_id: str) -> list[int]:
    return [e.data["step"] for e in _events(database, job_id)
            if e.kind == EventKind.checkpoint and e.data.get("stage") == "search"]  # fmt: skip


def test_autoscaled_slurm_workers_run_a_job_scale_to_zero_and_survive_scancel(
    slurm_service: SlurmService, tmp_path: Path
):
    svc = slurm_service
    timings: dict[str, float] = {}
    model_dir = save_tiny_model(tmp_path / "tiny-bert")
    wait_for(lambda: "decisions in" in svc.autoscale_log.read_text(), 60, "the autoscaler")
    time.sleep(2)  # two passes with nothing to do
    assert svc.tasks() == []  # no worker runs before there is a job

    # --- 1. scale up from zero, run, download, scale back down ------------------------------
    created = svc.client.post("/jobs", json=tiny_job_spec(model_dir))
    assert created.status_code == 201, created.text
    queued_at = time.monotonic()
    job_id = created.json()["id"]
    wait_for(svc.running, 60, "a worker task running through Slurm", interval=0.1)
    timings["scale_up_running_s"] = time.monotonic() - queued_at
    wait_for(lambda: svc.job(job_id)["status"] != "queued", 120, "the job to be claimed",
             interval=0.1)  # fmt: skip
    timings["scale_up_claimed_s"] = time.monotonic() - queued_at

    job = svc.wait_job(job_id, 120)
    finished_at = time.monotonic()
    assert job["status"] == "succeeded", (job["error"], svc.logs())
    assert job["attempt"] == 1
    listing = svc.client.get(f"/jobs/{job_id}/artifacts").json()
    (checkpoint,) = [a for a in listing["data"] if a["kind"] == "checkpoint"]
    download = svc.client.get(checkpoint["download_url"])
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == checkpoint["sha256"]
    assert download.headers["etag"].strip('"') == checkpoint["sha256"]

    wait_for(lambda: not svc.tasks(), 60, "the idle worker to exit", interval=0.1)
    timings["scale_down_s"] = time.monotonic() - finished_at
    worker_logs = sorted(svc.log_dir.glob("*.log"))
    assert len(worker_logs) == 1, worker_logs  # one submission, one task
    assert "exiting: idle for" in worker_logs[0].read_text()
    decisions = [json.loads(line) for line in
                 (svc.state_dir / "decisions.jsonl").read_text().splitlines()]  # fmt: skip
    submits = [d for d in decisions if d["action"] == "submit"]
    assert [d["count"] for d in submits] == [1] and submits[0]["demand"] == 1
    status = svc.status()  # what `srnet slurm status` shows now: no worker, the decisions
    assert f"worker tasks ({svc.job_name}): 0 pending, 0 running" in status, status
    assert "submit 1  demand 1" in status, status

    # --- 2. scancel mid-job: the job checkpoints, goes back, resumes elsewhere, finishes once -
    spec = tiny_job_spec(model_dir, search_steps=STEPS, eval_every=20)
    job_id = svc.client.post("/jobs", json=spec).json()["id"]
    wait_for(lambda: _search_checkpoints(svc.database, job_id), 120, "a search checkpoint",
             interval=0.1)  # fmt: skip
    (victim,) = svc.running()
    subprocess.run(["scancel", victim], env=svc.env, check=True, timeout=30)
    job = svc.wait_job(job_id, 150)
    assert job["status"] == "succeeded", (job["error"], svc.logs())
    # Refunded: the first attempt stopped cleanly on Slurm's SIGTERM (a SIGKILLed one would be
    # recovered by the reconciler as attempt 2).
    assert job["attempt"] == 1, svc.logs()

    events = _events(svc.database, job_id)
    statuses = [e.status for e in events if e.kind == EventKind.status]
    assert statuses == ["running", "queued", "running", "succeeded"], statuses
    assert any("shutting down" in (e.message or "") for e in events)
    stopped_at = max(s for s in _search_checkpoints(svc.database, job_id)
                     if s < STEPS)  # fmt: skip
    (resume,) = [e for e in events if "resuming from the work folder" in (e.message or "")]
    resumed_from = [c["step"] for c in resume.data["resume"]["checkpoints"]
                    if c["path"] == "seed-1/mask-0.50"]  # fmt: skip
    assert resumed_from and resumed_from[0] > 0 and resumed_from[0] <= stopped_at
    metrics = svc.client.get(f"/jobs/{job_id}/metrics").json()
    (search,) = [c for c in metrics["curves"] if c["stage"] == "search"]
    steps = [p["step"] for p in search["points"]]
    assert steps == list(range(20, STEPS + 1, 20)), steps  # each evaluation once, none lost
    worker_logs = sorted(svc.log_dir.glob("*.log"))
    assert len(worker_logs) >= 3  # job 1's worker, the cancelled one, its replacement

    timings_path = os.environ.get("SRNET_SLURM_TIMINGS")
    if timings_path:
        Path(timings_path).write_text(json.dumps(timings, indent=1))
    print(f"\nSlurm timings: {json.dumps(timings)}")
    assert timings["scale_down_s"] < IDLE_S + 30
