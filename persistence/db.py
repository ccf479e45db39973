"""Engine and session factory, and the migration entry point (`upgrade_database`).

SQLite gets WAL (readers never block the writer), foreign keys (off by default in SQLite) and a
busy timeout, so the API, a worker and the reconciler can share one file on one machine. Within
one process, writers to a SQLite file also take turns on a lock (`SQLiteWriteLock`): SQLite's
own busy handler polls with sleeps growing to 100 ms and no queue, so under concurrent
requests a writer could wait a second for a lock held a few milliseconds (the API's p99 tail).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from persistence.settings import SharedSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def ensure_sqlite_folder(url: str) -> None:
    """SQLite creates the file but not its folder (`./var/` on a fresh checkout)."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


_WRITE_VERBS = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")
_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _raw(connection: Any) -> Any:
    """The DBAPI connection behind a pool proxy (SQLAlchemy passes either)."""
    return getattr(connection, "dbapi_connection", None) or connection


class SQLiteWriteLock:
    """One write transaction at a time per SQLite file in this process, queued on a lock.

    Taken before a transaction's first write statement, given back right after its COMMIT or
    ROLLBACK (every way a transaction ends goes through the dialect's do_commit / do_rollback,
    the pool's reset on check-in included). Other processes still meet SQLite's busy timeout.
    A wait longer than the busy timeout goes ahead without the lock (SQLite decides then), so a
    mistake here can cost time but never deadlock.
    """

    def __init__(self, path: Path, timeout_s: float):
        key = str(path.resolve())
        with _file_locks_guard:
            self.lock = _file_locks.setdefault(key, threading.Lock())
        self.timeout_s = timeout_s
        self.holders: set[int] = set()  # id() of the DBAPI connections holding the lock

    def install(self, engine: Engine) -> None:
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        @event.listens_for(engine, "before_cursor_execute")
        def _before_write(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if statement.lstrip()[:7].upper().startswith(_WRITE_VERBS):
                self.acquire(conn.connection)

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]

        @event.listens_for(engine.pool, "close")
        @event.listens_for(engine.pool, "invalidate")
        def _gone(dbapi_connection: Any, *_args: Any) -> None:
            self.release(dbapi_connection)

    def acquire(self, connection: Any) -> None:
        key = id(_raw(connection))
        if key in self.holders:
            return
        if self.lock.acquire(timeout=self.timeout_s):
            self.holders.add(key)

    def release(self, connection: Any) -> None:
        key = id(_raw(connection))
        if key in self.holders:
            self.holders.discard(key)
            self.lock.release()


def make_engine(
    url: str, *, echo: bool = False, sqlite_busy_timeout_ms: int = 15_000, **engine_kwargs: Any
) -> Engine:
    kwargs: dict[str, Any] = {"echo": echo, **engine_kwargs}
    if url.startswith("sqlite"):
        ensure_sqlite_folder(url)
        # Sessions move between threads (FastAPI's thread pool, the SSE poller).
        kwargs["connect_args"] = {"check_same_thread": False}
        engine = create_engine(url, **kwargs)
        file_backed = _sqlite_file(url) is not None

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(sqlite_busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if file_backed:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        if file_backed:
            path = _sqlite_file(url)
            assert path is not None
            SQLiteWriteLock(path, sqlite_busy_timeout_ms / 1000).install(engine)
        return engine
    # Connections idle behind a load balancer or a restarted PostgreSQL go stale.
    return create_engine(url, pool_pre_ping=True, **kwargs)


class Database:
    """One engine and its session factory; the API keeps one per app, a worker one per process."""

    def __init__(self, url: str, *, echo: bool = False, sqlite_busy_timeout_ms: int = 15_000):
        self.url = url
        self.engine = make_engine(url, echo=echo, sqlite_busy_timeout_ms=sqlite_busy_timeout_ms)
        # expire_on_commit=False: objects stay readable after the commit that precedes an
        # enqueue or a response.
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: SharedSettings) -> Database:
        return cls(
            settings.database_url,
            echo=settings.database_echo,
            sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back whatever the caller did not commit."""
        with self.sessionmaker() as session:
            try:
                yield session
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Any:
    """An Alembic Config for `url` that works from any working directory (installed too)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser interpolation syntax; URLs may contain it (encoded passwords).
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_database(url: str, revision: str = "head") -> None:
    """`alembic upgrade head` for `url`: the prestart step of the API and `srnet serve`."""
    from alembic import command

    ensure_sqlite_folder(url)
    command.upgrade(alembic_config(url), revision)
