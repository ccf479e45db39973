"""The sbatch script of a worker job array, and the settings a worker task receives.

Secrets never appear in the script or on a command line: the service's settings (database URL
with its password, broker URL, S3 keys) reach the job through the environment sbatch runs in
(`--export=ALL`: Slurm keeps a job's environment in its own state, readable by Slurm and root
only), or through an env file of mode 0600 that the script sources by path.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from persistence.settings import SharedSettings
from srnet.slurm.settings import SlurmSettings


class SlurmSetupError(ValueError):
    """The settings cannot run workers on a cluster (the message says which and why)."""


@dataclass(frozen=True)
class WorkerBatch:
    """One `sbatch` submission: `count` array tasks, each running one `srnet worker`."""

    slurm: SlurmSettings
    count: int
    log_dir: Path
    python: str = sys.executable

    def __post_init__(self) -> None:
        if self.count < 1:
            raise SlurmSetupError(f"count: {self.count}; at least 1 worker")

    def script(self) -> str:
        s = self.slurm
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={s.job_name}",
            f"#SBATCH --array=0-{self.count - 1}",
            f"#SBATCH --time={s.time}",
            "#SBATCH --nodes=1",
            "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={s.cpus_per_worker}",
        ]
        if s.gpus_per_worker:
            lines.append(f"#SBATCH --gres=gpu:{s.gpus_per_worker}")
        for name, value in (
            ("partition", s.partition),
            ("account", s.account),
            ("qos", s.qos),
            ("mem", s.mem),
        ):
            if value:
                lines.append(f"#SBATCH --{name}={value}")
        lines += [
            f"#SBATCH --output={self.log_dir / (s.job_name + '-%A_%a.log')}",
            # The job's environment is the one sbatch runs in; see the settings note below.
            "#SBATCH --export=ALL",
            *s.extra,
            "#",
            "# One SRNet worker per array task, on the GPU Slurm gives it (CUDA_VISIBLE_DEVICES).",
            "# Settings: SRNET_DATABASE_URL, SRNET_BROKER_URL, SRNET_ARTIFACT_STORE (and the S3",
            "# keys) come from "
            + (
                f"the 0600 file {s.env_file}, sourced below."
                if s.env_file
                else "the environment sbatch runs in (export them first; or print this\n"
                "# script with `srnet slurm workers --print --write-env-file FILE`, which\n"
                "# writes them to a 0600 FILE that the script sources)."
            ),
            "# Never write them here: Slurm keeps a copy (`scontrol write batch_script`).",
            "set -eo pipefail",
        ]
        if s.env_file:
            quoted = shlex.quote(str(s.env_file))
            lines += [f"set -a; . {quoted}; set +a"]
        lines += [*s.setup]
        # One CPU thread pool per worker, sized to what Slurm granted.
        lines.append(f'export OMP_NUM_THREADS="${{SLURM_CPUS_PER_TASK:-{s.cpus_per_worker}}}"')
        worker = [
            # A command prefix is allowed too: `apptainer exec --nv srnet.sif python`.
            *map(shlex.quote, shlex.split(s.python or self.python)),
            "-m",
            "srnet",
            "worker",
            "--queues",
            ",".join(s.queues),
            "--exit-when-idle",
            s.exit_when_idle,
            "--end-margin",
            s.end_margin,
            "--hostname",
            '"srnet-slurm-${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}_${SLURM_ARRAY_TASK_ID:-0}@%h"',
        ]
        # exec: the worker is the job's main process; a shell in between would die on
        # Slurm's SIGTERM and take the worker's clean stop with it.
        lines.append("exec " + " ".join(worker))
        return "\n".join(lines) + "\n"


# --- settings the job gets ------------------------------------------------------------------


def _env_names(model: type) -> dict[str, str]:
    """Field name -> its first environment name (`SRNET_DATABASE_URL`)."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names[name] = str(choices[0])
    return names


def _env_value(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | dict):
        return json.dumps(value)
    return str(value)


def service_environment(settings: SharedSettings) -> dict[str, str]:
    """The shared settings as `SRNET_*` variables, resolved (values from `.env` and defaults
    too), so a worker on another host uses the same database, broker and artifact store."""
    if settings.is_sqlite:
        raise SlurmSetupError(
            "SRNET_DATABASE_URL is a SQLite file: Slurm workers run on other hosts and need the "
            "service's PostgreSQL (postgresql://user:password@host/db)"
        )
    if not settings.broker_is_redis:
        raise SlurmSetupError(
            "SRNET_BROKER_URL is the embedded broker: Slurm workers need the service's Redis "
            "(redis://host:6379/0)"
        )
    env: dict[str, str] = {}
    skip = {"srnet_home"}  # the compute nodes' home is their own
    for name, env_name in _env_names(type(settings)).items():
        if name in skip:
            continue
        value = _env_value(getattr(settings, name))
        if value is not None:
            env[env_name] = value
    return env


def job_environment(settings: SharedSettings, base: dict[str, str] | None = None) -> dict[str, str]:
    """What sbatch runs in (and passes on with --export=ALL): this process's environment with
    the resolved service settings over it."""
    env = dict(os.environ if base is None else base)
    env.update(service_environment(settings))
    return env


def write_env_file(path: Path, values: dict[str, str]) -> Path:
    """`NAME='value'` lines a job sources with `set -a`; created with mode 0600 (never wider,
    also when the file existed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        text = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(values.items()))
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path
