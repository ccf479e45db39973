"""The service's database tables: SQLAlchemy 2 typed ORM models and the enums of their columns.
Every schema change comes with an Alembic migration."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zones, so values are stored as naive UTC
    (one format, so string comparison orders them) and come back tagged UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
BigIntPK = BigInteger().with_variant(Integer(), "sqlite")


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    cancelling = "cancelling"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})


class ArtifactKind(enum.StrEnum):
    mask = "mask"
    checkpoint = "checkpoint"
    report = "report"
    plot = "plot"
    onnx = "onnx"  # a tar of a unit's ONNX folder (export.onnx)


class EventKind(enum.StrEnum):
    created = "created"  # the job row was written (status queued)
    status = "status"  # a lifecycle transition
    stage = "stage"  # a pipeline stage started
    checkpoint = "checkpoint"  # a resumable checkpoint was written
    artifact = "artifact"  # an artifact was stored
    log = "log"  # anything else worth showing a user


def _sql_in(values: Any) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Base(DeclarativeBase):
    # Named constraints: Alembic can drop and alter them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


class Owner(Base):
    """A lab or user: every job, event, metric and artifact belongs to one."""

    __tablename__ = "owners"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Limits an admin sets for this owner (`srnet owners limits`); None: the service's setting
    # (SRNET_MAX_QUEUED_PER_OWNER, ...), 0: no limit (persistence.dispatch).
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer)
    max_running_jobs: Mapped[int | None] = mapped_column(Integer)
    max_studies: Mapped[int | None] = mapped_column(Integer)

    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="owner")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("owners.id", ondelete="CASCADE"), index=True
    )
    # sha256 hex of the whole key; see persistence.keys for why a fast hash is enough.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, identifies the key
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    owner: Mapped[Owner] = relationship(back_populates="api_keys", lazy="joined")


class Study(Base):
    """A grid of jobs and its results table (srcore.jobspec.study.StudySpec). Its children are
    ordinary jobs that carry `study_id` and their `StudyChild.key`."""

    __tablename__ = "studies"
    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_studies_owner_idempotency_key"),
        Index("ix_studies_owner_created", "owner_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]]  # StudySpec.model_dump(mode="json"), defaults filled in
    # The expansion as it was made: [{key, label, role, setting}] in table order, so the table
    # never depends on expanding the spec again with a later srcore.
    children: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    queue: Mapped[str] = mapped_column(String(16), default="gpu")
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({_sql_in(JobStatus)})", name="status"),
        CheckConstraint("attempt >= 0 AND max_attempts >= 1", name="attempts"),
        CheckConstraint("queue IN ('gpu', 'cpu')", name="queue"),
        # NULL keys never collide (both PostgreSQL and SQLite treat NULLs as distinct).
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency_key"),
        Index("ix_jobs_owner_created", "owner_id", "created_at", "id"),
        Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),
        Index("ix_jobs_queue_status_dispatched", "queue", "status", "dispatched_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("owners.id", ondelete="CASCADE"))
    name: Mapped[str | None] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(16), default="gpu")
    spec: Mapped[dict[str, Any]]  # JobSpec.model_dump(mode="json"), defaults filled in
    # A study's child: the study and the child's StudyChild.key (None for a plain job).
    study_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("studies.id", ondelete="CASCADE"), index=True
    )
    study_key: Mapped[str | None] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))  # body the key was used with

    status: Mapped[str] = mapped_column(String(16), default=JobStatus.queued.value)
    stage: Mapped[str | None] = mapped_column(String(32))
    progress_step: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    examples_per_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)  # the current stage's
    # The whole job across its stages (srcore.pipeline.progress), and "train" | "evaluate".
    job_fraction: Mapped[float | None] = mapped_column(Float)
    job_eta_s: Mapped[float | None] = mapped_column(Float)
    phase: Mapped[str | None] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    # The lab's own: tags (a list of strings) and a free-text note (PATCH /jobs/{id}).
    tags: Mapped[list[str] | None] = mapped_column(JSONType)
    note: Mapped[str | None] = mapped_column(Text)

    attempt: Mapped[int] = mapped_column(Integer, default=0)  # claims so far
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    enqueued_at: Mapped[datetime | None]  # last successful send to the broker
    # When the dispatcher let the job go to the workers (persistence.dispatch): until then a
    # queued job waits in the database, not on the broker. Kept through a retry.
    dispatched_at: Mapped[datetime | None]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def job_status(self) -> JobStatus:
        return JobStatus(self.status)


class JobEvent(Base):
    """The lifecycle log. The integer id orders events and is the SSE `Last-Event-ID`."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))  # the job's status after the event
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Metric(Base):
    """One evaluation: a point of the curve of (stage, seed, sparsity)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    stage: Mapped[str] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    sparsity: Mapped[float | None] = mapped_column(Float)
    payload: Mapped[dict[str, Any]]
    selected: Mapped[bool] = mapped_column(Boolean, default=False)


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_sql_in(ArtifactKind)})", name="kind"),
        # Exactly one home for the bytes: inline (masks) or the artifact store.
        CheckConstraint("(storage_key IS NULL) <> (data IS NULL)", name="one_location"),
        UniqueConstraint("job_id", "name", name="uq_artifacts_job_id_name"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))  # display / download file name
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    seed: Mapped[int | None] = mapped_column(BigInteger)
    sparsity: Mapped[float | None] = mapped_column(Float)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Made by persistence.artifacts.artifact_key from our ids, never from user input.
    storage_key: Mapped[str | None] = mapped_column(String(512))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)  # inline bytes (bit-packed masks)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
