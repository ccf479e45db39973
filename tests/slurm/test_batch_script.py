"""The sbatch script and the settings a worker task gets: durations and Slurm times parsed, bad
options refused naming the option, secrets never in the script (they travel in the job's
environment or a 0600 env file), `--print` writes the script."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from pydantic import ValidationError

from persistence.settings import SharedSettings
from srnet.slurm.batch import (
    SlurmSetupError,
    WorkerBatch,
    job_environment,
    service_environment,
    write_env_file,
)
from srnet.slurm.settings import SlurmSettings, parse_duration, slurm_time_seconds

PASSWORD = "s3cr3t-pw-9f2"
S3_SECRET = "aws-secret-1c7"


def shared(**extra) -> SharedSettings:
    values = {
        "database_url": f"postgresql://srnet:{PASSWORD}@db.lab/srnet",
        "broker_url": f"redis://:{PASSWORD}@redis.lab:6379/0",
        "artifact_store": "s3://bucket/srnet",
        "s3_access_key_id": "AKIAEXAMPLE",
        "s3_secret_access_key": S3_SECRET,
        **extra,
    }
    return SharedSettings(_env_file=None, **values)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), ("0.5h", 1800)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15x", "m", "1h 30", "-5m", ""])
def test_bad_durations_name_the_field(text):
    with pytest.raises(ValueError, match="exit_when_idle"):
        parse_duration(text, "exit_when_idle")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("45:00", 2700), ("12:00:00", 43200), ("1-00:00:00", 86400), ("2-12", 216000)],
)
def test_slurm_time_limits(text, seconds):
    assert slurm_time_seconds(text) == seconds


def test_settings_refuse_what_cannot_work():
    with pytest.raises(ValidationError, match="end_margin"):
        SlurmSettings(_env_file=None, time="20:00", end_margin="30m")
    with pytest.raises(ValidationError, match="min_workers"):
        SlurmSettings(_env_file=None, min_workers=3, max_workers=2)
    with pytest.raises(ValidationError, match="gpus_per_worker"):
        SlurmSettings(_env_file=None, gpus_per_worker=2)
    with pytest.raises(ValidationError, match="is not one '#SBATCH"):
        SlurmSettings(_env_file=None, extra=["--constraint=a100"])
    with pytest.raises(ValidationError, match="partition"):
        SlurmSettings(_env_file=None, partition="gpu; rm -rf ~")
    with pytest.raises(ValidationError, match="time"):
        SlurmSettings(_env_file=None, time="twelve hours")


def test_the_script_asks_slurm_for_one_gpu_per_worker_and_execs_the_worker(tmp_path):
    slurm = SlurmSettings(
        _env_file=None, partition="gpu", time="12:00:00", account="lab-a", qos="normal",
        mem="32G", extra=["#SBATCH --constraint=a100"], setup=["module load cuda/12.4"],
        exit_when_idle="15m", end_margin="20m",
    )  # fmt: skip
    script = WorkerBatch(slurm, 4, tmp_path / "logs", python="/opt/venv/bin/python").script()
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for directive in ("--job-name=srnet-worker", "--array=0-3", "--time=12:00:00",
                      "--gres=gpu:1", "--partition=gpu", "--account=lab-a", "--qos=normal",
                      "--mem=32G", "--cpus-per-task=4", "--export=ALL",
                      f"--output={tmp_path / 'logs'}/srnet-worker-%A_%a.log"):  # fmt: skip
        assert f"#SBATCH {directive}" in lines
    assert "#SBATCH --constraint=a100" in lines
    # Every #SBATCH line comes before the first command (sbatch stops reading at it).
    first_command = lines.index("set -eo pipefail")
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_command:])
    assert all(ln.startswith("#") for ln in lines[:first_command])
    assert lines.index("module load cuda/12.4") < len(lines) - 1
    assert lines[-1] == (
        "exec /opt/venv/bin/python -m srnet worker --queues gpu --exit-when-idle 15m "
        '--end-margin 20m --hostname "srnet-slurm-${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_'
        '${SLURM_ARRAY_TASK_ID:-0}@%h"'
    )
    cpu = WorkerBatch(SlurmSettings(_env_file=None, gpus_per_worker=0, queues="cpu"), 1,
                      tmp_path).script()  # fmt: skip
    assert "--gres" not in cpu and "--queues cpu " in cpu and "#SBATCH --array=0-0" in cpu
    image = "apptainer exec --nv '/images/srnet v2.sif' python"
    boxed = SlurmSettings(_env_file=None, python=image)
    assert "exec apptainer exec --nv '/images/srnet v2.sif' python -m srnet worker " in (
        WorkerBatch(boxed, 1, tmp_path).script()
    )


def test_secrets_go_to_the_environment_not_the_script(tmp_path):
    settings = shared()
    env = job_environment(settings, base={"PATH": "/usr/bin"})
    assert env["SRNET_DATABASE_URL"] == f"postgresql+psycopg://srnet:{PASSWORD}@db.lab/srnet"
    assert env["SRNET_BROKER_URL"] == f"redis://:{PASSWORD}@redis.lab:6379/0"
    assert env["SRNET_S3_SECRET_ACCESS_KEY"] == S3_SECRET
    assert env["SRNET_ARTIFACT_STORE"] == "s3://bucket/srnet" and env["PATH"] == "/usr/bin"
    assert "SRNET_HOME" not in env  # the compute nodes' own
    script = WorkerBatch(SlurmSettings(_env_file=None), 2, tmp_path).script()
    for secret in (PASSWORD, S3_SECRET, "AKIAEXAMPLE", "db.lab", "redis.lab"):
        assert secret not in script


def test_an_env_file_is_0600_and_the_script_sources_it_by_path(tmp_path):
    path = tmp_path / "conf" / "worker.env"
    path.parent.mkdir()
    path.write_text("old")
    os.chmod(path, 0o644)  # an existing, too open file is narrowed
    write_env_file(path, service_environment(shared()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    script = WorkerBatch(SlurmSettings(_env_file=None, env_file=path), 1, tmp_path).script()
    assert f"set -a; . {path}; set +a" in script and PASSWORD not in script
    # What the job sees after sourcing it: the exact values, quoting and all.
    shown = subprocess.run(
        ["bash", "-c", f"set -a; . {path}; set +a; env"], env={}, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    assert f"SRNET_DATABASE_URL=postgresql+psycopg://srnet:{PASSWORD}@db.lab/srnet" in shown
    assert f"SRNET_S3_SECRET_ACCESS_KEY={S3_SECRET}" in shown


def test_local_services_are_refused_for_cluster_workers():
    with pytest.raises(SlurmSetupError, match="SQLite"):
        service_environment(SharedSettings(_env_file=None, database_url="sqlite:////tmp/x.db"))
    with pytest.raises(SlurmSetupError, match="embedded broker"):
        service_environment(shared(broker_url="sqla+sqlite:////tmp/b.db"))


def srnet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "srnet", *args], env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_print_writes_the_script_and_the_env_file(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    env.update({"SRNET_HOME": str(tmp_path / "home"),
                "SRNET_DATABASE_URL": f"postgresql://srnet:{PASSWORD}@db.lab/srnet",
                "SRNET_BROKER_URL": "redis://redis.lab:6379/0"})  # fmt: skip
    env_file = tmp_path / "worker.env"
    done = srnet("slurm", "workers", "--count", "3", "--partition", "a100", "--print",
                 "--write-env-file", str(env_file), env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "#SBATCH --array=0-2" in done.stdout and "#SBATCH --partition=a100" in done.stdout
    assert f". {env_file}" in done.stdout and PASSWORD not in done.stdout
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert PASSWORD in env_file.read_text()
    # Slurm opens the log before the script runs: the folder must exist for a hand submission.
    assert (tmp_path / "home" / "slurm" / "logs").is_dir()

    bad = srnet("slurm", "workers", "--print", "--exit-when-idle", "soon", env=env)
    assert bad.returncode == 2
    assert "--exit-when-idle: exit_when_idle: 'soon' is not a duration" in bad.stderr
    short = srnet("slurm", "workers", "--print", "--time", "20:00", env=env)
    assert short.returncode == 2 and not short.stdout
    assert "settings: end_margin (30m) is not shorter than time (20:00)" in short.stderr


def test_submitted_workers_on_the_real_cluster_keep_secrets_out_of_the_script(
    slurm_cluster, tmp_path
):
    """`srnet slurm workers --count 2` (held, so nothing starts): one array of two tasks, and
    the script Slurm stored has no password in it."""
    name = f"srnet-sub-{os.urandom(3).hex()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    env.update({"SRNET_HOME": str(tmp_path / "home"), "SLURM_CONF": str(slurm_cluster),
                "SRNET_DATABASE_URL": f"postgresql://srnet:{PASSWORD}@db.lab/srnet",
                "SRNET_BROKER_URL": f"redis://:{PASSWORD}@redis.lab:6379/0"})  # fmt: skip
    done = srnet("slurm", "workers", "--count", "2", "--gpus-per-worker", "0", "--time", "1:00:00",
                 "--cpus-per-worker", "1", "--job-name", name, "--extra", "#SBATCH --hold",
                 env=env)  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.strip()
        assert job_id.isdigit() and f"2 worker(s) submitted as job array {job_id}" in done.stderr
        listed = subprocess.run(["squeue", "-h", "-r", "-n", name, "-o", "%i %T %r"], env=env,
                                capture_output=True, text=True, timeout=30).stdout  # fmt: skip
        assert sorted(listed.split("\n")[:2]) == [f"{job_id}_0 PENDING JobHeldUser",
                                                  f"{job_id}_1 PENDING JobHeldUser"]  # fmt: skip
        stored = subprocess.run(["scontrol", "write", "batch_script", job_id, "-"], env=env,
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        assert stored.returncode == 0, stored.stderr
        assert "exec " in stored.stdout and PASSWORD not in stored.stdout
    finally:
        subprocess.run(["scancel", "-n", name], env=env, check=False, timeout=30)
