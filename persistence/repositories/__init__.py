"""Every query of the service lives in this package, one module per domain. Repositories flush
but never commit: the request handler or the worker task that owns the unit of work commits (and
enqueues after that).

State changes of a job are conditional UPDATEs (`... WHERE status = <expected>`): the database,
not the broker or a lock in some process, decides which of two racing writers wins.
"""

from persistence.repositories.artifacts import ArtifactRepository
from persistence.repositories.base import Clock, IdempotencyConflict, SubmittedRepository
from persistence.repositories.events import JobEventRepository
from persistence.repositories.jobs import (
    ALLOWED_TRANSITIONS,
    ClaimCheck,
    InvalidTransition,
    JobNotFound,
    JobRepository,
    Lease,
    StatusChange,
)
from persistence.repositories.metrics import MetricRepository
from persistence.repositories.owners import ApiKeyRepository, OwnerRepository
from persistence.repositories.pagination import (
    MAX_PAGE_SIZE,
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
)
from persistence.repositories.runs import RunPoint, RunRepository
from persistence.repositories.studies import StudyRepository

__all__ = [
    "ALLOWED_TRANSITIONS",
    "MAX_PAGE_SIZE",
    "ApiKeyRepository",
    "ArtifactRepository",
    "ClaimCheck",
    "Clock",
    "IdempotencyConflict",
    "InvalidCursor",
    "InvalidTransition",
    "JobEventRepository",
    "JobNotFound",
    "JobRepository",
    "Lease",
    "MetricRepository",
    "OwnerRepository",
    "Page",
    "RunPoint",
    "RunRepository",
    "StatusChange",
    "StudyRepository",
    "SubmittedRepository",
    "decode_cursor",
    "encode_cursor",
]
