"""Slurm through its command-line tools: `sbatch --parsable` (the script on stdin), `squeue`
with a fixed output format, `scancel`. Plain subprocess calls: these commands' options and
output formats have been stable across Slurm releases for a decade, and they work from any
login node without a library built against the cluster's libslurm (README, libraries)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# squeue states that hold (or will hold) a worker. COMPLETING is a worker on its way out.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"})
RUNNING_STATES = frozenset({"RUNNING", "CONFIGURING", "RESIZING", "SUSPENDED", "SIGNALING"})
SQUEUE_FORMAT = "%i|%T|%r|%V|%S|%e|%N"
COMMAND_TIMEOUT_S = 60.0


class SlurmCommandError(RuntimeError):
    """A Slurm command failed; the message has the command and what it printed."""


@dataclass(frozen=True)
class WorkerTask:
    """One array task of a worker submission, as squeue shows it."""

    job_id: str  # 123_4 (array task) or 123
    state: str
    reason: str
    submitted: str
    started: str
    ends: str
    node: str

    @property
    def pending(self) -> bool:
        return self.state in PENDING_STATES

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def parse_squeue(text: str) -> list[WorkerTask]:
    tasks = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 7:
            raise SlurmCommandError(f"squeue printed a line this version cannot read: {line!r}")
        tasks.append(WorkerTask(*(f.strip() for f in fields)))
    return tasks


def parse_sbatch(text: str) -> str:
    """`sbatch --parsable` prints `jobid` or `jobid;cluster`."""
    job_id = text.strip().split(";", 1)[0]
    if not job_id.isdigit():
        raise SlurmCommandError(f"sbatch did not print a job id: {text!r}")
    return job_id


class SlurmCommands:
    """sbatch, squeue and scancel for the worker tasks of one job name (and this user)."""

    def __init__(self, job_name: str, *, env: Mapping[str, str] | None = None):
        self.job_name = job_name
        self.env = dict(env) if env is not None else None

    def _run(
        self, argv: Sequence[str], *, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        try:
            done = subprocess.run(
                list(argv),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                env=dict(env) if env is not None else self.env,
            )
        except FileNotFoundError as exc:
            raise SlurmCommandError(
                f"{argv[0]} is not installed here (is this a Slurm login node?)"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SlurmCommandError(
                f"{' '.join(argv[:2])} did not answer in {COMMAND_TIMEOUT_S:.0f} s"
            ) from exc
        if done.returncode != 0:
            raise SlurmCommandError(
                f"{argv[0]} exited {done.returncode}: {(done.stderr or done.stdout).strip()[:2000]}"
            )
        return done.stdout

    def submit(self, script: str, env: Mapping[str, str]) -> str:
        """Submit `script` (on stdin: no file to clean up) in `env`; answers the job id."""
        return parse_sbatch(self._run(["sbatch", "--parsable"], stdin=script, env=env))

    def tasks(self) -> list[WorkerTask]:
        """Every array task of this job name and user still in squeue, one line per task."""
        import getpass

        out = self._run(
            [
                "squeue",
                "-h",
                "-r",
                "-n",
                self.job_name,
                "-u",
                getpass.getuser(),
                "-o",
                SQUEUE_FORMAT,
            ]
        )
        return parse_squeue(out)

    def cancel_pending(self, job_ids: Sequence[str]) -> None:
        """Cancel these tasks if they are still pending (a task that started meanwhile runs
        on: a running worker is never cancelled by the autoscaler; it exits when idle)."""
        if job_ids:
            self._run(["scancel", "--state=PENDING", *job_ids])
