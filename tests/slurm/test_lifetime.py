"""A worker's own end: the idle timer, the time-limit margin (no new claim when the remaining time
is shorter, exit once the job in hand ends), and the end time read from Slurm. The last test
runs `srnet worker` as a real Slurm job with a 2-minute limit: it reads its end time from
squeue and exits cleanly, exit code 0, long before the limit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime

import pytest

from srnet.slurm.lifetime import Action, SlurmEndTime, WorkerLifetime, parse_squeue_time
from tests.integration.conftest import redis_broker  # noqa: F401
from tests.worker.processes import TEST_WORKER_ENV, wait_for


def test_idle_exit_counts_from_the_last_job():
    life = WorkerLifetime(exit_when_idle_s=60, started_at=1000.0)
    assert life.check(1059.0, busy=False) is Action.keep
    assert life.check(1059.5, busy=True) is Action.keep  # a job: the clock restarts
    assert life.check(2000.0, busy=True) is Action.keep  # a long job is not idleness
    assert life.check(2059.0, busy=False) is Action.keep
    assert life.check(2060.0, busy=False) is Action.exit
    assert "idle for 60 s" in life.reason


def test_no_new_claims_inside_the_margin_and_exit_when_the_job_in_hand_ends():
    life = WorkerLifetime(end_margin_s=600, end_time=lambda: 10_000.0, started_at=0.0)
    assert life.check(9_399.0, busy=False) is Action.keep  # 601 s left
    assert life.check(9_401.0, busy=True) is Action.stop_claiming  # 599 s left, a job in hand
    assert not life.claiming and "599 s left" in life.reason
    assert life.check(9_500.0, busy=True) is Action.keep  # the job runs on
    assert life.check(9_600.0, busy=False) is Action.exit  # and then the worker goes
    idle = WorkerLifetime(end_margin_s=600, end_time=lambda: 10_000.0)
    assert idle.check(9_500.0, busy=False) is Action.exit  # nothing in hand: at once


def test_no_end_time_no_margin_exit():
    life = WorkerLifetime(end_margin_s=600, end_time=lambda: None, started_at=0.0)
    assert life.check(10**9, busy=False) is Action.keep


def test_end_time_from_the_environment_or_squeue():
    fixed = SlurmEndTime(environ={"SLURM_JOB_ID": "7", "SLURM_JOB_END_TIME": "1798000000"},
                         run=lambda argv: pytest.fail("squeue asked"))  # fmt: skip
    assert fixed() == 1798000000.0
    asked: list[list[str]] = []
    now = [0.0]

    def squeue(argv: list[str]) -> str:
        asked.append(argv)
        return "2026-12-03T21:00:00\n"

    probe = SlurmEndTime(environ={"SLURM_JOB_ID": "7"}, run=squeue, refresh_s=300,
                         clock=lambda: now[0])  # fmt: skip
    expected = datetime(2026, 12, 3, 21, 0, 0).timestamp()
    assert probe() == expected and probe() == expected
    assert asked == [["squeue", "-h", "-j", "7", "-o", "%e"]]  # cached between refreshes
    now[0] = 301.0
    probe()
    assert len(asked) == 2
    assert SlurmEndTime(environ={}, run=squeue)() is None  # not in a Slurm job
    assert parse_squeue_time("N/A") is None and parse_squeue_time("NONE") is None
    with pytest.raises(ValueError, match="not a time"):
        parse_squeue_time("soon")


def test_squeue_failure_keeps_the_last_end_time_and_says_so(caplog):
    answers = iter(["2026-12-03T21:00:00", OSError("squeue: slurmctld not responding")])

    def squeue(argv: list[str]) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    now = [0.0]
    probe = SlurmEndTime(environ={"SLURM_JOB_ID": "7"}, run=squeue, refresh_s=1,
                         clock=lambda: now[0])  # fmt: skip
    first = probe()
    now[0] = 5.0
    assert probe() == first
    assert "could not read this Slurm job's end time" in caplog.text


def test_a_real_slurm_worker_exits_before_its_time_limit(slurm_cluster, redis_broker, tmp_path):  # noqa: F811
    """2-minute limit, 110 s margin: the worker starts, reads its end time from squeue (Slurm
    22.05 sets no SLURM_JOB_END_TIME), takes no job and exits 0 within seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SRNET_", "WORKER_"))}
    env.update(TEST_WORKER_ENV)
    env.update({
        "SRNET_HOME": str(tmp_path / "home"),
        "SRNET_DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}",
        "SRNET_BROKER_URL": redis_broker.url,
        "SRNET_BROKER_KEY_PREFIX": redis_broker.prefix,
        "SRNET_WORKER_PRELOAD": "false",  # no torch in the main process: starts in seconds
        "OMP_NUM_THREADS": "1",
    })  # fmt: skip
    log_dir = tmp_path / "logs"
    name = f"srnet-limit-{os.urandom(3).hex()}"
    done = subprocess.run(
        [sys.executable, "-m", "srnet", "slurm", "workers", "--count", "1",
         "--gpus-per-worker", "0", "--cpus-per-worker", "1", "--queues", "cpu",
         "--time", "2", "--end-margin", "110s", "--exit-when-idle", "1h",
         "--job-name", name, "--log-dir", str(log_dir), "--print"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    script = tmp_path / "worker.sbatch"
    script.write_text(done.stdout)  # submitted by hand, as a lab would
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], env=env,
                               capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    job_id = submitted.stdout.strip().split(";")[0]
    started = time.monotonic()
    try:

        def gone() -> bool:
            out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=env,
                                 capture_output=True, text=True, timeout=30).stdout  # fmt: skip
            return out.strip() in ("", "COMPLETED")

        wait_for(gone, 100, "the worker to exit before its time limit", interval=0.5)
    finally:
        subprocess.run(["scancel", job_id], env=env, check=False, timeout=30)
    assert time.monotonic() - started < 100  # the limit is 120 s
    (log,) = log_dir.glob(f"{name}-*.log")
    text = log.read_text()
    assert f"(Slurm job {job_id})" in text
    assert "left of the time limit, less than the 110 s margin: no new jobs" in text
    assert "Canceling queue cpu" in text
    shown = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True,
                           text=True, timeout=30).stdout  # fmt: skip
    assert "JobState=COMPLETED" in shown and "ExitCode=0:0" in shown, shown


def test_srnet_worker_refuses_a_duration_that_is_not_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    env.update({"SRNET_HOME": str(tmp_path / "home"), "SRNET_WORKER_PRELOAD": "false"})
    done = subprocess.run([sys.executable, "-m", "srnet", "worker", "--exit-when-idle", "soon"],
                          env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "--exit-when-idle: 'soon' is not a duration" in done.stderr
