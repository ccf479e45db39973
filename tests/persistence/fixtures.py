"""Database fixtures shared by tests/persistence, tests/api and tests/integration (imported by
their conftest.py files).

`database_url` runs a test on both backends: a SQLite file copied from a template migrated once
per run with `alembic upgrade head`, and a real PostgreSQL database created for this run
(`srnet_test_<random>`, migrated the same way, emptied between tests, dropped at the end).
The PostgreSQL variant skips, saying why, where the server does not answer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key
from persistence.tables import Base

PG_HOST = os.environ.get("SRNET_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("SRNET_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("SRNET_TEST_PG_USER", "postgres")
REDIS_URL = os.environ.get("SRNET_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def postgres_unavailable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3
        ):
            return None
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} does not answer ({first_line})"


def redis_unavailable() -> str | None:
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        return None
    except Exception as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        return f"Redis at {REDIS_URL} does not answer ({first_line})"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as connection:
        connection.execute(sql)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_database(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"srnet_test_{secrets.token_hex(6)}"
    _admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        upgrade_database(url)
        yield url
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_postgres(url: str) -> None:
    database = Database(url)
    try:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "srnet.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def make_owner(database: Database, name: str | None = None) -> tuple[uuid.UUID, str]:
    """A new owner with one API key: (owner id, plaintext key)."""
    with database.session() as session:
        created = create_api_key(session, name or f"lab-{secrets.token_hex(4)}")
        session.commit()
        return created.owner.id, created.key
