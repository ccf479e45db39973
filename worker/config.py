"""Settings of the worker, the reconciler and `srnet serve` (the service-wide ones, database,
broker, artifact store, attempts, heartbeat staleness, are `persistence.settings.Settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

QUEUES = ("gpu", "cpu")


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    # Per-job folders live under WORK_DIR/jobs/<job id>: a retry on the same host (or on any
    # host when WORK_DIR is a shared volume) resumes from the checkpoints found there.
    work_dir: Path = Field(default=Path("./var/work"), validation_alias="WORK_DIR")
    # Bias models and dense fine-tunes shared by every job of the host (WORK_DIR/cache when
    # unset): two jobs with the same model, data and dense settings fine-tune once — a sweep
    # over sparsities or losses reuses one dense model. The worker never cleans it (a BERT-base
    # entry is ~440 MB); delete old entries by hand or point it at a shared volume.
    stage_cache_dir: Path | None = Field(default=None, validation_alias="STAGE_CACHE_DIR")
    keep_work_dir: bool = Field(
        default=False,
        validation_alias="KEEP_WORK_DIR",
        description="Keep a finished job's work folder (debugging); default: removed.",
    )

    # A comma-separated list in the environment (WORKER_QUEUES=gpu).
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        default=QUEUES, validation_alias="WORKER_QUEUES"
    )
    concurrency: int = Field(default=1, ge=1, le=64, validation_alias="WORKER_CONCURRENCY")
    # Import torch, transformers and srcore in the worker's main process before the pool forks,
    # so each job's fresh child starts in a second instead of re-importing them. Importing does
    # not initialise CUDA; only the child that runs a job does.
    preload: bool = Field(default=True, validation_alias="WORKER_PRELOAD")

    # How often a running job's heartbeat is sent; each answer also says whether a cancel
    # was requested, so this bounds how long a cancel takes to be noticed.
    heartbeat_interval_s: float = Field(default=2.0, gt=0, validation_alias="HEARTBEAT_INTERVAL_S")
    # At most one progress write per this many seconds (the last step of a stage always).
    progress_interval_s: float = Field(default=1.0, ge=0, validation_alias="PROGRESS_INTERVAL_S")

    reconcile_interval_s: float = Field(default=15.0, gt=0, validation_alias="RECONCILE_INTERVAL_S")
    # A queued job sent this long ago and still queued is sent again when the broker's queue
    # holds fewer messages than there are such jobs (it lost them: Redis restarted).
    reconcile_resend_after_s: float = Field(
        default=120.0, ge=0, validation_alias="RECONCILE_RESEND_AFTER_S"
    )

    @property
    def stage_cache(self) -> Path:
        return self.stage_cache_dir or self.work_dir / "cache"

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        if isinstance(value, str):
            value = [q.strip() for q in value.split(",") if q.strip()]
        return value

    @field_validator("queues")
    @classmethod
    def _known_queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(QUEUES))
        if unknown or not value:
            raise ValueError(f"WORKER_QUEUES must name some of {', '.join(QUEUES)}")
        return tuple(dict.fromkeys(value))

    def job_dir(self, job_id: object) -> Path:
        return self.work_dir / "jobs" / str(job_id)
