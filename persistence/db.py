"""Engine and session factory, and the migration entry point (`upgrade_database`).

SQLite gets WAL (readers never block the writer), foreign keys (off by default in SQLite) and a
busy timeout, so the API, a worker and the reconciler can share one file on one machine.
"""

from __future__ import annotations

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
