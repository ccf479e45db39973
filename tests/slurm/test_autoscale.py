"""The autoscaler's arithmetic (plan), its squeue/sbatch parsing, and its passes against the real
test cluster: worker tasks submitted up to the minimum and the demand (never past the maximum),
pending extras cancelled when the demand drops, each decision in decisions.jsonl."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from persistence.db import Database
from persistence.keys import create_api_key
from persistence.repositories import JobRepository
from persistence.tables import JobStatus
from srnet.slurm.autoscale import Autoscaler, DecisionLog, demand_of, plan
from srnet.slurm.commands import (
    SlurmCommandError,
    SlurmCommands,
    WorkerTask,
    parse_sbatch,
    parse_squeue,
)
from srnet.slurm.settings import SlurmSettings


def task(job_id: str, state: str) -> WorkerTask:
    return WorkerTask(job_id, state, "None", "", "", "", "")


def test_plan_matches_the_demand_between_min_and_max():
    assert plan(3, [], min_workers=0, max_workers=8).submit == 3
    assert plan(12, [], min_workers=0, max_workers=8).submit == 8
    assert plan(0, [], min_workers=2, max_workers=8).submit == 2
    have = [task("7_0", "RUNNING"), task("7_1", "PENDING")]
    assert plan(2, have, min_workers=0, max_workers=8) == plan(2, have, min_workers=0,
                                                               max_workers=8)  # fmt: skip
    assert plan(2, have, min_workers=0, max_workers=8).submit == 0
    assert plan(3, have, min_workers=0, max_workers=8).submit == 1
    # COMPLETING: a worker on its way out is not capacity.
    assert plan(1, [task("6_0", "COMPLETING")], min_workers=0, max_workers=8).submit == 1


def test_plan_cancels_pending_tasks_newest_first_and_never_a_running_one():
    have = [task("7_0", "RUNNING"), task("7_1", "PENDING"), task("9_0", "PENDING"),
            task("7_10", "PENDING")]  # fmt: skip
    decided = plan(1, have, min_workers=0, max_workers=8)
    assert decided.submit == 0 and decided.cancel == ("9_0", "7_10", "7_1")
    # Only running workers, none needed: nothing to cancel (they exit when idle).
    idle = plan(0, [task("7_0", "RUNNING"), task("8_0", "RUNNING")], min_workers=0, max_workers=8)
    assert idle.cancel == () and idle.submit == 0 and idle.wanted == 0


def test_running_jobs_count_only_up_to_the_running_worker_tasks():
    # A job held by a worker outside Slurm (a lab machine on the same queue): no Slurm worker.
    assert demand_of(queued=0, active=1, tasks=[]) == 0
    # One held by a Slurm worker, one by a lab machine, one queued: two Slurm workers.
    assert demand_of(queued=1, active=2, tasks=[task("7_0", "RUNNING")]) == 2
    assert demand_of(queued=2, active=0, tasks=[task("7_0", "PENDING")]) == 2


def test_squeue_and_sbatch_output():
    text = ("12_0|RUNNING|None|2026-12-03T09:00:00|2026-12-03T09:00:01|2026-12-03T21:00:01|gpu7\n"
            "12_1|PENDING|Resources|2026-12-03T09:00:00|N/A|N/A|\n")  # fmt: skip
    running, pending = parse_squeue(text)
    assert running.running and not running.pending and running.node == "gpu7"
    assert pending.pending and pending.reason == "Resources"
    assert parse_sbatch("4242\n") == "4242" and parse_sbatch("4242;cluster-a") == "4242"
    with pytest.raises(SlurmCommandError, match="did not print a job id"):
        parse_sbatch("sbatch: error: Batch job submission failed")
    with pytest.raises(SlurmCommandError, match="cannot read"):
        parse_squeue("12_0 RUNNING")


# --- against the real test cluster ---------------------------------------------------------


def queue_jobs(database: Database, n: int, queue: str = "gpu") -> list:
    with database.session() as session:
        owner = create_api_key(session, f"lab-{os.urandom(3).hex()}").owner
        jobs = [JobRepository(session).create(owner_id=owner.id, spec={"name": f"j{i}"},
                                              spec_hash=os.urandom(8).hex(), queue=queue,
                                              max_attempts=3)
                for i in range(n)]  # fmt: skip
        session.commit()
        return [j.id for j in jobs]


@pytest.fixture
def held_autoscaler(slurm_cluster, sqlite_template: Path, tmp_path: Path):
    """An autoscaler on a real cluster whose workers are submitted held (`#SBATCH --hold`):
    they stay pending, so no worker process starts, and the test reads squeue at leisure."""
    db_path = tmp_path / "srnet.db"
    shutil.copyfile(sqlite_template, db_path)
    database = Database(f"sqlite:///{db_path}")
    name = f"srnet-held-{os.urandom(3).hex()}"
    slurm = SlurmSettings(_env_file=None, job_name=name, gpus_per_worker=0, cpus_per_worker=1,
                          time="10:00", end_margin="1m", min_workers=1, max_workers=3,
                          extra=["#SBATCH --hold"])  # fmt: skip
    commands = SlurmCommands(name)
    scaler = Autoscaler(database, commands, slurm, job_env=dict(os.environ),
                        log_dir=tmp_path / "logs",
                        decisions=DecisionLog(tmp_path / "state"))  # fmt: skip
    try:
        yield scaler, database
    finally:
        subprocess.run(["scancel", "-n", name], check=False, timeout=30)
        database.dispose()


def test_real_cluster_scale_to_min_then_demand_capped_by_max_then_back(held_autoscaler):
    scaler, database = held_autoscaler
    first = scaler.run_once()
    assert (first.action, first.count, first.wanted) == ("submit", 1, 1)  # the minimum
    tasks = scaler.commands.tasks()
    assert [t.state for t in tasks] == ["PENDING"] and tasks[0].reason == "JobHeldUser"

    job_ids = queue_jobs(database, 5)
    queue_jobs(database, 2, queue="cpu")  # not this worker's queue
    grown = scaler.run_once()
    assert (grown.action, grown.count, grown.demand, grown.wanted) == ("submit", 2, 5, 3)
    assert len(scaler.commands.tasks()) == 3
    assert scaler.run_once().action == "none"  # nothing submitted twice (logged: 3 pending)
    assert scaler.run_once().action == "none"  # and a pass that sees no change is not logged

    with database.session() as session:
        for job_id in job_ids:
            JobRepository(session).transition(job_id, JobStatus.cancelled, message="test")
        session.commit()
    shrunk = scaler.run_once()
    assert (shrunk.action, shrunk.count, shrunk.wanted) == ("cancel", 2, 1)
    deadline = time.monotonic() + 30
    while len(scaler.commands.tasks()) != 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    (kept,) = scaler.commands.tasks()
    assert kept.job_id == tasks[0].job_id  # the oldest pending task stays

    logged = [json.loads(line) for line in scaler.decisions.path.read_text().splitlines()]
    assert [(d["action"], d["count"], d["pending"]) for d in logged] == [
        ("submit", 1, 0),
        ("submit", 2, 1),
        ("none", 0, 3),
        ("cancel", 2, 3),
    ]
    assert logged[1]["job_ids"] and logged[3]["job_ids"] == list(shrunk.job_ids)


def test_a_job_held_by_a_worker_outside_slurm_starts_no_slurm_worker(held_autoscaler):
    scaler, database = held_autoscaler
    scaler.slurm = scaler.slurm.model_copy(update={"min_workers": 0})
    (job_id,) = queue_jobs(database, 1)
    with database.session() as session:
        assert JobRepository(session).claim(job_id, "lab-box:4242:ab12cd34") is not None
        session.commit()
    decision = scaler.run_once()
    assert (decision.action, decision.demand, decision.queued) == ("none", 0, 0)
    assert scaler.commands.tasks() == []


def test_a_refused_submission_is_a_logged_error(slurm_cluster, sqlite_template, tmp_path):
    db_path = tmp_path / "srnet.db"
    shutil.copyfile(sqlite_template, db_path)
    database = Database(f"sqlite:///{db_path}")
    slurm = SlurmSettings(_env_file=None, job_name=f"srnet-bad-{os.urandom(3).hex()}",
                          gpus_per_worker=0, partition="no-such-partition",
                          min_workers=1)  # fmt: skip
    scaler = Autoscaler(database, SlurmCommands(slurm.job_name), slurm,
                        job_env=dict(os.environ), log_dir=tmp_path / "logs",
                        decisions=DecisionLog(tmp_path / "state"))  # fmt: skip
    try:
        decision = scaler.run_once()
    finally:
        database.dispose()
    assert decision.action == "error" and "invalid partition" in decision.error.lower()
    (logged,) = scaler.decisions.last(5)
    assert logged.action == "error" and logged.error == decision.error
