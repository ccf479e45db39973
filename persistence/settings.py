"""The service's configuration, in one place: read from the environment and `.env`
(pydantic-settings), every variable named `SRNET_<SETTING>`.

Three sections:
- `SharedSettings`: what the API, the worker and the reconciler must agree on (database,
  broker, queues, artifact store, job lifecycle, the folders a spec may name);
- `Settings` (= shared + the API's own: bootstrap key, request limits, streaming);
- `WorkerSettings`: the worker's, the reconciler's and `srnet serve`'s own (work folders,
  queues consumed, heartbeats, reconciler passes).

The defaults run everything on one machine with no service at all: a SQLite file, kombu's
SQLAlchemy transport on another SQLite file as the Celery broker, and a local artifact folder.

The names from before the `SRNET_` prefix (`DATABASE_URL`, `BROKER_URL`, `WORK_DIR`, ...) are
still read, as deprecated aliases (a warning is logged); the `SRNET_` name wins when both are set.
README.md ("Configuration") lists every variable.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

ENV_PREFIX = "SRNET_"
Environment = Literal["development", "test", "staging", "production"]
# The queues jobs are routed by; a worker consumes some of them (SRNET_WORKER_QUEUES).
QueueName = Literal["gpu", "cpu"]
QUEUES: tuple[str, ...] = get_args(QueueName)


def split_queue_list(value: object) -> object:
    """A comma-separated queue list from the environment ("gpu, cpu") as a list; else as is."""
    if isinstance(value, str):
        value = [q.strip() for q in value.split(",") if q.strip()]
    return value


def known_queues(value: tuple[str, ...], name: str) -> tuple[str, ...]:
    """`value` without repeats, if it names some of QUEUES and nothing else; `name` is the
    setting or option the error names."""
    unknown = sorted(set(value) - set(QUEUES))
    if unknown or not value:
        raise ValueError(f"{name} must name some of {', '.join(QUEUES)}")
    return tuple(dict.fromkeys(value))


# Values that must never protect a real deployment (they appear in docs and examples).
_WEAK_KEYS = frozenset({"changethis", "changeme", "secret", "test", "admin", "password"})
MIN_BOOTSTRAP_KEY_LENGTH = 32

# Deprecated bare name -> its SRNET_ name, filled by `env()`.
DEPRECATED_NAMES: dict[str, str] = {}
_warned: set[str] = set()


def env(name: str, *, deprecated: str | None = None) -> AliasChoices:
    """The environment names of a setting: `SRNET_<name>` first, then the deprecated bare one
    (`deprecated`, by default `name` itself; "" for a setting that never had one)."""
    old = name if deprecated is None else deprecated
    if not old:
        return AliasChoices(ENV_PREFIX + name)
    DEPRECATED_NAMES[old] = ENV_PREFIX + name
    return AliasChoices(ENV_PREFIX + name, old)


def default_home() -> Path:
    """Where the service keeps its files when SRNET_HOME is unset: per user, the same from any
    folder ($XDG_DATA_HOME/srnet, else ~/.local/share/srnet)."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "srnet"


class _SrnetSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    # Every file the defaults write lies under it: srnet.db, broker.db, artifacts/, work/,
    # api-key. Serve, worker, reconcile, keys and migrate of one user find the same service
    # whatever the current folder (a relative SRNET_HOME is relative to it).
    # (The field is not called `home`: the variable HOME would be read for it.)
    srnet_home: Path = Field(
        default_factory=default_home, validation_alias=env("HOME", deprecated="")
    )

    @property
    def home(self) -> Path:
        return self.srnet_home

    @model_validator(mode="before")
    @classmethod
    def _warn_deprecated_names(cls, data: Any) -> Any:
        for old, new in DEPRECATED_NAMES.items():
            if os.environ.get(old) and not os.environ.get(new) and old not in _warned:
                _warned.add(old)
                log.warning("environment variable %s is deprecated: use %s", old, new)
        return data


class SharedSettings(_SrnetSettings):
    """What every process of the service reads: database, broker, queues, artifacts, jobs."""

    environment: Environment = Field(default="development", validation_alias=env("ENVIRONMENT"))

    # --- database and broker -------------------------------------------------------------
    # "" (unset): SQLite in SRNET_HOME/srnet.db
    database_url: str = Field(default="", validation_alias=env("DATABASE_URL"))
    database_echo: bool = Field(default=False, validation_alias=env("DATABASE_ECHO"))
    sqlite_busy_timeout_ms: int = Field(
        default=15_000, ge=0, validation_alias=env("SQLITE_BUSY_TIMEOUT_MS")
    )
    # "" (unset): kombu's SQLAlchemy transport on SRNET_HOME/broker.db
    broker_url: str = Field(default="", validation_alias=env("BROKER_URL"))
    # Redis only: every key the broker writes starts with this (several deployments or test
    # runs can share one Redis).
    broker_key_prefix: str = Field(default="", validation_alias=env("BROKER_KEY_PREFIX"))
    # Redis only: an unacknowledged message is redelivered after this long. It must exceed
    # the longest job, or a still-running job is delivered to a second worker (the claim in
    # the database refuses it, but the message would be wasted).
    broker_visibility_timeout_s: int = Field(
        default=7 * 24 * 3600, ge=60, validation_alias=env("BROKER_VISIBILITY_TIMEOUT_S")
    )
    broker_connect_timeout_s: float = Field(
        default=3.0, gt=0, validation_alias=env("BROKER_CONNECT_TIMEOUT_S")
    )
    default_queue: QueueName = Field(default="gpu", validation_alias=env("DEFAULT_QUEUE"))

    # --- artifacts -----------------------------------------------------------------------
    artifact_store: str = Field(
        default="",
        validation_alias=env("ARTIFACT_STORE"),
        description="file://<folder> or s3://<bucket>[/<prefix>]; unset: SRNET_HOME/artifacts",
    )
    # MinIO, Ceph, R2...; None: AWS
    s3_endpoint_url: str | None = Field(default=None, validation_alias=env("S3_ENDPOINT_URL"))
    s3_region: str | None = Field(default=None, validation_alias=env("S3_REGION"))
    # None: boto3's usual credential chain
    s3_access_key_id: str | None = Field(default=None, validation_alias=env("S3_ACCESS_KEY_ID"))
    s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias=env("S3_SECRET_ACCESS_KEY")
    )
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", validation_alias=env("S3_ADDRESSING_STYLE")
    )

    # --- job lifecycle (the API sets the attempts, workers and reconciler enforce them) -----
    job_max_attempts: int = Field(default=3, ge=1, le=100, validation_alias=env("JOB_MAX_ATTEMPTS"))
    # A running job whose heartbeat is older than this is taken to have lost its worker.
    heartbeat_stale_s: float = Field(default=300.0, gt=0, validation_alias=env("HEARTBEAT_STALE_S"))
    # --- fair shares (persistence.dispatch; an owner's own limits, set by an admin, win) ---
    # Jobs of one owner running or handed to the workers at a time (0: no limit).
    max_running_per_owner: int = Field(
        default=0, ge=0, validation_alias=env("MAX_RUNNING_PER_OWNER")
    )
    # Queued jobs one owner may have (a submission past it is refused, 429; 0: no limit).
    max_queued_per_owner: int = Field(default=0, ge=0, validation_alias=env("MAX_QUEUED_PER_OWNER"))
    # Studies with unfinished jobs one owner may have (429 past it; 0: no limit).
    max_studies_per_owner: int = Field(
        default=0, ge=0, validation_alias=env("MAX_STUDIES_PER_OWNER")
    )
    # Jobs handed to the broker per queue and not yet claimed by a worker. Small, so that the
    # broker's first-come order never decides who runs next (the dispatcher hands out the next
    # job each time a worker claims one); raise it where many workers start at once.
    dispatch_ahead: int = Field(default=1, ge=1, le=1000, validation_alias=env("DISPATCH_AHEAD"))
    # The Retry-After of a submission refused for a per-owner limit.
    limit_retry_after_s: int = Field(default=60, ge=1, validation_alias=env("LIMIT_RETRY_AFTER_S"))

    # Local files a job spec may name (data, bias/teacher files, model directories) must lie
    # under one of these folders (the API checks at submission, the worker again). Empty: only
    # bundled samples and hub ids.
    data_roots: list[str] = Field(default_factory=list, validation_alias=env("DATA_ROOTS"))

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # psycopg 3 is the driver we ship; plain postgres URLs would pick psycopg2.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @model_validator(mode="after")
    def _fill_from_home(self) -> SharedSettings:
        """Unset locations default to files under SRNET_HOME (runs before the checks below)."""
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'srnet.db'}"
        if not self.broker_url:
            self.broker_url = f"sqla+sqlite:///{self.home / 'broker.db'}"
        if not self.artifact_store:
            folder = (self.home / "artifacts").as_posix()
            self.artifact_store = f"file://{folder if folder.startswith('/') else './' + folder}"
        _check_store(self.artifact_store)
        return self

    def locations(self) -> str:
        """What a command prints so its user knows which service it talks to."""
        return f"database {_without_password(self.database_url)}; artifacts {self.artifact_store}"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for other databases or in memory)."""
        if not self.is_sqlite:
            return None
        path = self.database_url.split(":///", 1)[1] if ":///" in self.database_url else ""
        return Path(path) if path and path != ":memory:" else None

    def _unsafe_values(self) -> list[str]:
        """What must not reach staging or production (a section adds its own)."""
        problems: list[str] = []
        if self.environment in ("staging", "production"):
            sqlite = self.sqlite_path
            if sqlite is not None and not sqlite.is_absolute():
                problems.append(
                    "SRNET_DATABASE_URL is a SQLite file relative to the working directory "
                    "(a relative SRNET_HOME or URL); give an absolute one"
                )
            store = self.artifact_store
            if store.startswith("file://") and not store.startswith("file:///"):
                problems.append(
                    "SRNET_ARTIFACT_STORE is a folder relative to the working directory "
                    "(a relative SRNET_HOME or URL); give an absolute one"
                )
        return problems

    @model_validator(mode="after")
    def _refuse_unsafe_values(self) -> SharedSettings:
        problems = self._unsafe_values()
        if not problems:
            return self
        if self.environment in ("development", "test"):
            for problem in problems:
                warnings.warn(problem, stacklevel=2)
            return self
        raise ValueError("; ".join(problems))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_is_redis(self) -> bool:
        return self.broker_url.startswith(("redis://", "rediss://", "redis+socket://"))

    def broker_transport_options(self) -> dict[str, object]:
        """Celery `broker_transport_options`: the API's client and the worker must agree."""
        if not self.broker_is_redis:
            return {}
        options: dict[str, object] = {
            "visibility_timeout": self.broker_visibility_timeout_s,
            "socket_connect_timeout": self.broker_connect_timeout_s,
            "socket_timeout": max(self.broker_connect_timeout_s, 5.0),
        }
        if self.broker_key_prefix:
            options["global_keyprefix"] = self.broker_key_prefix
        return options


def _check_store(value: str) -> None:
    scheme = urlsplit(value).scheme
    if scheme not in ("file", "s3"):
        raise ValueError("artifact_store must be file://<folder> or s3://<bucket>[/<prefix>]")
    if scheme == "s3" and not urlsplit(value).netloc:
        raise ValueError("artifact_store s3:// needs a bucket: s3://<bucket>[/<prefix>]")


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class Settings(SharedSettings):
    """The shared settings plus the API's own (what `create_app` and `srnet serve` read)."""

    # --- API keys ------------------------------------------------------------------------
    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=env("BOOTSTRAP_API_KEY", deprecated=""),
        description="Created (hashed) for the bootstrap owner at start if it does not exist.",
    )
    bootstrap_owner: str = Field(
        default="admin", max_length=200, validation_alias=env("BOOTSTRAP_OWNER", deprecated="")
    )

    # --- limits --------------------------------------------------------------------------
    max_request_body_bytes: int = Field(
        default=64 * 1024, ge=1024, validation_alias=env("MAX_REQUEST_BODY_BYTES")
    )
    max_page_size: int = Field(default=100, ge=1, le=1000, validation_alias=env("MAX_PAGE_SIZE"))
    default_page_size: int = Field(default=20, ge=1, validation_alias=env("DEFAULT_PAGE_SIZE"))
    max_events_per_page: int = Field(
        default=1000, ge=1, validation_alias=env("MAX_EVENTS_PER_PAGE")
    )
    max_metric_points: int = Field(default=20_000, ge=1, validation_alias=env("MAX_METRIC_POINTS"))
    sse_poll_interval_s: float = Field(
        default=0.5, gt=0, validation_alias=env("SSE_POLL_INTERVAL_S")
    )
    sse_keepalive_s: float = Field(default=15.0, gt=0, validation_alias=env("SSE_KEEPALIVE_S"))
    download_chunk_bytes: int = Field(
        default=256 * 1024, ge=1024, validation_alias=env("DOWNLOAD_CHUNK_BYTES")
    )

    def _unsafe_values(self) -> list[str]:
        problems = super()._unsafe_values()
        key = self.bootstrap_api_key.get_secret_value() if self.bootstrap_api_key else None
        if key is not None and (key.lower() in _WEAK_KEYS or len(key) < MIN_BOOTSTRAP_KEY_LENGTH):
            problems.insert(
                0,
                f"SRNET_BOOTSTRAP_API_KEY is weak: use at least {MIN_BOOTSTRAP_KEY_LENGTH} "
                "random characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            )
        return problems


class WorkerSettings(_SrnetSettings):
    """The worker's, the reconciler's and `srnet serve`'s own settings (next to the shared
    ones, which they read through `Settings`)."""

    # Per-job folders live under WORK_DIR/jobs/<job id>: a retry on the same host (or on any
    # host when WORK_DIR is a shared volume) resumes from the checkpoints found there.
    # None (unset): SRNET_HOME/work
    work_dir: Path | None = Field(default=None, validation_alias=env("WORK_DIR"))
    # Bias models and dense fine-tunes shared by every job of the host (WORK_DIR/cache when
    # unset): two jobs with the same model, data and dense settings fine-tune once — a sweep
    # over sparsities or losses reuses one dense model. A BERT-base entry is ~440 MB: after
    # each job the worker evicts least recently used entries down to stage_cache_max_gb.
    stage_cache_dir: Path | None = Field(default=None, validation_alias=env("STAGE_CACHE_DIR"))
    stage_cache_max_gb: float = Field(
        default=20.0,
        ge=0,
        allow_inf_nan=False,
        validation_alias=env("STAGE_CACHE_MAX_GB"),
        description=(
            "Bound of the stage cache in GB (10^9 bytes): after each job the worker evicts "
            "least recently used entries (never one a running job or build holds) until the "
            "cache fits; 0: no bound."
        ),
    )
    keep_work_dir: bool = Field(
        default=False,
        validation_alias=env("KEEP_WORK_DIR"),
        description="Keep a finished job's work folder (debugging); default: removed.",
    )

    # A comma-separated list in the environment (SRNET_WORKER_QUEUES=gpu).
    queues: Annotated[tuple[str, ...], NoDecode] = Field(
        default=QUEUES, validation_alias=env("WORKER_QUEUES")
    )
    concurrency: int = Field(default=1, ge=1, le=64, validation_alias=env("WORKER_CONCURRENCY"))
    # One worker process per GPU (`srnet worker --gpus`): "all", or GPU ids / UUIDs
    # ("0,1,3"); unset: one worker process, on whatever GPU CUDA_VISIBLE_DEVICES leaves it.
    gpus: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        default=None, validation_alias=env("WORKER_GPUS", deprecated="")
    )
    # Import torch, transformers and srcore in the worker's main process before the pool forks,
    # so each job's fresh child starts in a second instead of re-importing them. Importing does
    # not initialise CUDA; only the child that runs a job does.
    preload: bool = Field(default=True, validation_alias=env("WORKER_PRELOAD"))

    # How often a running job's heartbeat is sent; each answer also says whether a cancel
    # was requested, so this bounds how long a cancel takes to be noticed.
    heartbeat_interval_s: float = Field(
        default=2.0, gt=0, validation_alias=env("HEARTBEAT_INTERVAL_S")
    )
    # At most one progress write per this many seconds (the last step of a stage always).
    progress_interval_s: float = Field(
        default=1.0, ge=0, validation_alias=env("PROGRESS_INTERVAL_S")
    )

    reconcile_interval_s: float = Field(
        default=15.0, gt=0, validation_alias=env("RECONCILE_INTERVAL_S")
    )
    # A queued job sent this long ago and still queued is sent again when the broker's queue
    # holds fewer messages than there are such jobs (it lost them: Redis restarted).
    reconcile_resend_after_s: float = Field(
        default=120.0, ge=0, validation_alias=env("RECONCILE_RESEND_AFTER_S")
    )

    # Experiment tracking (worker/mlflow_export.py): each succeeded job becomes one MLflow run.
    # MLflow's own MLFLOW_TRACKING_URI is read too (the SRNET_ name wins), so a worker already
    # set up for MLflow needs nothing more.
    mlflow_tracking_uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        validation_alias=AliasChoices(ENV_PREFIX + "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description=(
            "MLflow tracking URI (http://host:5000, sqlite:///path/mlflow.db); unset: no "
            "export. Needs the `mlflow` extra (pip install 'srnet[mlflow]')."
        ),
    )
    mlflow_experiment: str = Field(
        default="srnet",
        min_length=1,
        max_length=500,
        validation_alias=env("MLFLOW_EXPERIMENT", deprecated=""),
        description="The MLflow experiment jobs are logged in (created when missing).",
    )
    mlflow_artifact_location: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        validation_alias=env("MLFLOW_ARTIFACT_LOCATION", deprecated=""),
        description=(
            "Where a newly created experiment keeps its artifacts (a folder or s3:// URI); "
            "unset: the tracking server's default (for a sqlite:// URI without a server that "
            "is ./mlruns under the worker's current folder)."
        ),
    )
    mlflow_checkpoints: bool = Field(
        default=False,
        validation_alias=env("MLFLOW_CHECKPOINTS", deprecated=""),
        description="Log the pruned checkpoints as MLflow artifacts too (large: ~440 MB each "
        "for BERT-base); masks, report and plot are always logged.",
    )

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _mlflow_installed(cls, value: str | None) -> str | None:
        # Refused at start, not found out after a job: an export that cannot happen is a
        # deployment error, not a warning after every job.
        if value is not None and importlib.util.find_spec("mlflow") is None:
            raise ValueError(
                "SRNET_MLFLOW_TRACKING_URI (or MLFLOW_TRACKING_URI) is set but mlflow is not "
                "installed: pip install 'srnet[mlflow]', or unset it"
            )
        return value

    @model_validator(mode="after")
    def _work_dir_in_home(self) -> WorkerSettings:
        if self.work_dir is None:
            self.work_dir = self.home / "work"
        return self

    @property
    def work(self) -> Path:
        """The work folder (SRNET_WORK_DIR, else SRNET_HOME/work)."""
        return self.work_dir if self.work_dir is not None else self.home / "work"

    @property
    def stage_cache(self) -> Path:
        return self.stage_cache_dir or self.work / "cache"

    @field_validator("queues", mode="before")
    @classmethod
    def _split_queues(cls, value: object) -> object:
        return split_queue_list(value)

    @field_validator("queues")
    @classmethod
    def _known_queues(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return known_queues(value, "SRNET_WORKER_QUEUES")

    @field_validator("gpus", mode="before")
    @classmethod
    def _split_gpus(cls, value: object) -> object:
        if isinstance(value, str):
            value = [g.strip() for g in value.split(",")]
        return value

    @field_validator("gpus")
    @classmethod
    def _gpu_ids(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        ids = tuple(g.strip() for g in value)
        if not ids or "" in ids:
            raise ValueError("SRNET_WORKER_GPUS must be 'all' or GPU ids such as 0,1,3")
        if "all" in (i.lower() for i in ids):
            if len(ids) > 1:
                raise ValueError("SRNET_WORKER_GPUS: 'all' cannot be mixed with GPU ids")
            return ("all",)
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"SRNET_WORKER_GPUS names GPU {', '.join(twice)} twice")
        return ids

    def job_dir(self, job_id: object) -> Path:
        return self.work_dir / "jobs" / str(job_id)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings(...)` instead)."""
    return Settings()
