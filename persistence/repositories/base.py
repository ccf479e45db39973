"""What every repository shares: the clock it stamps rows with (tests pass their own), and for
the rows an owner submits (jobs, studies) the owner-scoped read, the idempotency-key lookup
with its replay rule, and keyset paging newest first."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from persistence.repositories.pagination import Page, decode_cursor, encode_cursor
from persistence.tables import utcnow

Clock = Callable[[], datetime]


class IdempotencyConflict(Exception):
    """The idempotency key was used before with another request (another request hash)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was used with another request")
        self.key = key


class Submitted(Protocol):
    """A row an owner submits: a job or a study."""

    id: Any
    owner_id: Any
    idempotency_key: Any
    request_hash: Any
    created_at: Any


RowT = TypeVar("RowT", bound=Submitted)


class SubmittedRepository(Generic[RowT]):
    """The reads the jobs' and the studies' repositories share. Subclasses name their table
    and whether reads refresh rows already in the session (a job's status moves under it)."""

    table: ClassVar[type[Any]]
    refresh_reads: ClassVar[bool] = False

    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def _column(self, name: str) -> InstrumentedAttribute[Any]:
        return getattr(self.table, name)

    def get(self, row_id: uuid.UUID, *, owner_id: uuid.UUID | None = None) -> RowT | None:
        """The row, or None; with `owner_id`, None also when someone else owns it."""
        options = {"populate_existing": True} if self.refresh_reads else {}
        row = self._session.get(self.table, row_id, **options)
        if row is None or (owner_id is not None and row.owner_id != owner_id):
            return None
        return row

    def get_by_idempotency_key(self, owner_id: uuid.UUID, key: str) -> RowT | None:
        return self._session.scalar(
            select(self.table).where(
                self._column("owner_id") == owner_id, self._column("idempotency_key") == key
            )
        )

    def replay(self, owner_id: uuid.UUID, key: str, request_hash: str) -> RowT | None:
        """The row an earlier request with this key made (None: the key is new); raises
        `IdempotencyConflict` when that request was another one."""
        existing = self.get_by_idempotency_key(owner_id, key)
        if existing is not None and existing.request_hash != request_hash:
            raise IdempotencyConflict(key)
        return existing

    def owned(self, owner_id: uuid.UUID) -> Select[tuple[RowT]]:
        return select(self.table).where(self._column("owner_id") == owner_id)

    def count_owned(self, owner_id: uuid.UUID, *conditions: Any) -> int:
        query = (
            select(func.count())
            .select_from(self.table)
            .where(self._column("owner_id") == owner_id, *conditions)
        )
        return int(self._session.scalar(query) or 0)

    def page(self, query: Select[tuple[RowT]], *, limit: int, cursor: str | None) -> Page[RowT]:
        """Newest first, keyset-paginated on (created_at, id): stable under inserts. Raises
        `InvalidCursor` for a cursor this did not hand out."""
        created, row_id = self._column("created_at"), self._column("id")
        if cursor:
            created_at, last_id = decode_cursor(cursor)
            query = query.where(
                or_(created < created_at, and_(created == created_at, row_id < last_id))
            )
        query = query.order_by(created.desc(), row_id.desc()).limit(limit + 1)
        if self.refresh_reads:
            query = query.execution_options(populate_existing=True)
        rows = list(self._session.scalars(query))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return Page(rows, next_cursor)
