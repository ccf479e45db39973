"""The Slurm settings, `SRNET_SLURM_*`, and the durations they are written in (`15m`, `1h30m`).

What a worker task asks Slurm for (partition, time, GPUs, account, QoS, extra `#SBATCH` lines),
the autoscaler's bounds and pace, and where its decisions are logged. Every one has a
command-line option of the same name on `srnet slurm workers|autoscale`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from persistence.settings import default_home, known_queues, split_queue_list

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)([dhms]))", re.IGNORECASE)
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
# Slurm's --time forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS.
_SLURM_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_duration(value: str | float | int, field: str = "duration") -> float:
    """Seconds from `90`, `90s`, `15m`, `1h30m`, `2d` (a bare number is seconds)."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
                raise ValueError(
                    f"{field}: {value!r} is not a duration (examples: 90s, 15m, 1h30m, 2d)"
                ) from None
            seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    if seconds < 0:
        raise ValueError(f"{field}: {value!r} is negative")
    return seconds


def slurm_time_seconds(value: str) -> int:
    """Seconds of a Slurm `--time` value (`12:00:00`, `1-00:00:00`, `30` minutes, `45:00`)."""
    match = _SLURM_TIME.match(value.strip())
    if not match:
        raise ValueError(
            f"time: {value!r} is not a Slurm time limit (minutes, MM:SS, HH:MM:SS or D-HH:MM:SS)"
        )
    days, a, b, c = match.groups()
    numbers = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        h, m, s = [*numbers, 0, 0][:3]
        return int(days) * 86400 + h * 3600 + m * 60 + s
    if len(numbers) == 1:  # minutes
        return numbers[0] * 60
    if len(numbers) == 2:  # MM:SS
        return numbers[0] * 60 + numbers[1]
    return numbers[0] * 3600 + numbers[1] * 60 + numbers[2]


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"SRNET_SLURM_{name}")


class SlurmSettings(BaseSettings):
    """`SRNET_SLURM_*`: what each worker task asks Slurm for and how the autoscaler behaves."""

    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    # --- each worker task ------------------------------------------------------------------
    partition: str | None = Field(default=None, validation_alias=_env("PARTITION"))
    time: str = Field(default="12:00:00", validation_alias=_env("TIME"))
    gpus_per_worker: int = Field(default=1, ge=0, le=1, validation_alias=_env("GPUS_PER_WORKER"))
    cpus_per_worker: int = Field(default=4, ge=1, le=256, validation_alias=_env("CPUS_PER_WORKER"))
    mem: str | None = Field(default=None, validation_alias=_env("MEM"))
    account: str | None = Field(default=None, validation_alias=_env("ACCOUNT"))
    qos: str | None = Field(default=None, validation_alias=_env("QOS"))
    # Whole `#SBATCH ...` lines, added as written (JSON list in the environment).
    extra: list[str] = Field(default_factory=list, validation_alias=_env("EXTRA"))
    # Shell lines run before the worker starts (`module load cuda/12.4`, `. venv/bin/activate`).
    setup: list[str] = Field(default_factory=list, validation_alias=_env("SETUP"))
    job_name: str = Field(default="srnet-worker", validation_alias=_env("JOB_NAME"))
    # The queues the workers consume, and the queued jobs the autoscaler counts.
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        default=("gpu",), validation_alias=_env("QUEUES")
    )
    # The interpreter that runs `-m srnet worker` on the compute nodes (a shared venv), or a
    # command ending in one (`apptainer exec --nv /images/srnet.sif python`).
    python: str | None = Field(default=None, validation_alias=_env("PYTHON"))
    # Sourced by the job before the worker starts (settings and secrets, mode 0600); unset:
    # the settings travel in the environment sbatch runs in (--export=ALL).
    env_file: Path | None = Field(default=None, validation_alias=_env("ENV_FILE"))
    exit_when_idle: str = Field(default="15m", validation_alias=_env("EXIT_WHEN_IDLE"))
    # Stop claiming new jobs when less than this is left of the task's time limit.
    end_margin: str = Field(default="30m", validation_alias=_env("END_MARGIN"))

    # --- the autoscaler --------------------------------------------------------------------
    min_workers: int = Field(default=0, ge=0, validation_alias=_env("MIN_WORKERS"))
    max_workers: int = Field(default=4, ge=0, le=1000, validation_alias=_env("MAX_WORKERS"))
    interval_s: float = Field(default=30.0, gt=0, validation_alias=_env("INTERVAL_S"))
    # The autoscaler's decision log and `srnet slurm status`'s source; unset: SRNET_HOME/slurm.
    state_dir: Path | None = Field(default=None, validation_alias=_env("STATE_DIR"))
    log_dir: Path | None = Field(default=None, validation_alias=_env("LOG_DIR"))

    @field_validator("time")
    @classmethod
    def _slurm_time(cls, value: str) -> str:
        slurm_time_seconds(value)
        return value

    @field_validator("exit_when_idle", "end_margin")
    @classmethod
    def _duration(cls, value: str, info) -> str:
        parse_duration(value, info.field_name)
        return value

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        return split_queue_list(value)

    @field_validator("queues")
    @classmethod
    def _known_queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_queues(value, "queues")

    @field_validator("extra")
    @classmethod
    def _sbatch_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            if not line.startswith("#SBATCH ") or "\n" in line:
                raise ValueError(f"extra: {line!r} is not one '#SBATCH ...' line")
        return value

    @field_validator("partition", "account", "qos", "mem", "job_name")
    @classmethod
    def _one_word(cls, value: str | None, info) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_.,:=+\-]+", value):
            raise ValueError(
                f"{info.field_name}: {value!r} must be one word (letters, digits, _.,:=+-)"
            )
        return value

    @model_validator(mode="after")
    def _bounds(self) -> SlurmSettings:
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) is above max_workers ({self.max_workers})"
            )
        if self.end_margin_s >= self.time_limit_s:
            raise ValueError(
                f"end_margin ({self.end_margin}) is not shorter than time ({self.time}): a "
                "worker would take no job at all"
            )
        return self

    @property
    def exit_when_idle_s(self) -> float:
        return parse_duration(self.exit_when_idle)

    @property
    def end_margin_s(self) -> float:
        return parse_duration(self.end_margin)

    @property
    def time_limit_s(self) -> int:
        return slurm_time_seconds(self.time)

    def state_folder(self) -> Path:
        return self.state_dir or default_home() / "slurm"
