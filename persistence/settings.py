"""Service configuration, read from the environment and `.env` (pydantic-settings).

The defaults run everything on one machine with no service at all: a SQLite file, kombu's
SQLAlchemy transport on another SQLite file as the Celery broker, and a local artifact folder.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "staging", "production"]
QueueName = Literal["gpu", "cpu"]

# Values that must never protect a real deployment (they appear in docs and examples).
_WEAK_KEYS = frozenset({"changethis", "changeme", "secret", "test", "admin", "password"})
MIN_BOOTSTRAP_KEY_LENGTH = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_ignore_empty=True, extra="ignore", populate_by_name=True
    )

    environment: Environment = Field(
        default="development", validation_alias=AliasChoices("ENVIRONMENT", "environment")
    )

    # --- database and broker -------------------------------------------------------------
    database_url: str = "sqlite:///./var/srnet.db"
    database_echo: bool = False
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)
    broker_url: str = "sqla+sqlite:///./var/broker.db"
    # Redis only: every key the broker writes starts with this (several deployments or test
    # runs can share one Redis).
    broker_key_prefix: str = ""
    # Redis only: an unacknowledged message is redelivered after this long. It must exceed
    # the longest job, or a still-running job is delivered to a second worker (the claim in
    # the database refuses it, but the message would be wasted).
    broker_visibility_timeout_s: int = Field(default=7 * 24 * 3600, ge=60)
    broker_connect_timeout_s: float = Field(default=3.0, gt=0)
    default_queue: QueueName = "gpu"

    # --- artifacts -----------------------------------------------------------------------
    artifact_store: str = Field(
        default="file://./var/artifacts",
        description="file://<folder> or s3://<bucket>[/<prefix>]",
    )
    s3_endpoint_url: str | None = None  # MinIO, Ceph, R2...; None: AWS
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # None: boto3's usual credential chain
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"

    # --- API keys ------------------------------------------------------------------------
    bootstrap_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SRNET_BOOTSTRAP_API_KEY", "bootstrap_api_key"),
        description="Created (hashed) for the bootstrap owner at start if it does not exist.",
    )
    bootstrap_owner: str = Field(
        default="admin",
        max_length=200,
        validation_alias=AliasChoices("SRNET_BOOTSTRAP_OWNER", "bootstrap_owner"),
    )

    # --- job lifecycle (shared by the API, the worker and the reconciler) ---------------------
    job_max_attempts: int = Field(default=3, ge=1, le=100)
    # A running job whose heartbeat is older than this is taken to have lost its worker.
    heartbeat_stale_s: float = Field(default=300.0, gt=0)

    # --- limits --------------------------------------------------------------------------
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_page_size: int = Field(default=100, ge=1, le=1000)
    default_page_size: int = Field(default=20, ge=1)
    max_events_per_page: int = Field(default=1000, ge=1)
    max_metric_points: int = Field(default=20_000, ge=1)
    # Local files a job spec may name (data, bias/teacher files, model directories) must lie
    # under one of these folders on the workers. Empty: only bundled samples and hub ids.
    data_roots: list[str] = Field(default_factory=list)
    sse_poll_interval_s: float = Field(default=0.5, gt=0)
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    download_chunk_bytes: int = Field(default=256 * 1024, ge=1024)

    @field_validator("database_url")
    @classmethod
    def _normalise_database_url(cls, value: str) -> str:
        # psycopg 3 is the driver we ship; plain postgres URLs would pick psycopg2.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("artifact_store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in ("file", "s3"):
            raise ValueError("artifact_store must be file://<folder> or s3://<bucket>[/<prefix>]")
        if scheme == "s3" and not urlsplit(value).netloc:
            raise ValueError("artifact_store s3:// needs a bucket: s3://<bucket>[/<prefix>]")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        problems: list[str] = []
        key = self.bootstrap_api_key.get_secret_value() if self.bootstrap_api_key else None
        if key is not None and (key.lower() in _WEAK_KEYS or len(key) < MIN_BOOTSTRAP_KEY_LENGTH):
            problems.append(
                f"SRNET_BOOTSTRAP_API_KEY is weak: use at least {MIN_BOOTSTRAP_KEY_LENGTH} "
                "random characters (python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if self.environment in ("staging", "production"):
            if self.is_sqlite and self.database_url.startswith("sqlite:///./"):
                problems.append(
                    "DATABASE_URL is the development default (a SQLite file relative to the "
                    "working directory); set it explicitly"
                )
            if self.artifact_store.startswith("file://./"):
                problems.append(
                    "ARTIFACT_STORE is the development default (a folder relative to the "
                    "working directory); set it explicitly"
                )
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


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings(...)` instead)."""
    return Settings()
