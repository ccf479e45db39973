"""Integration fixtures: the real PostgreSQL (a database per run, see tests/persistence/
fixtures.py) and the real Redis as the Celery broker, on a db number of the tests' own
(SRNET_TEST_REDIS_URL, default db 13) under a random key prefix per test, deleted afterwards.
Everything here skips, saying why, where a service does not answer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from persistence.settings import Settings
from tests.persistence.fixtures import *  # noqa: F403
from tests.persistence.fixtures import REDIS_URL, _empty_postgres, redis_unavailable

pytestmark = pytest.mark.integration


@dataclass
class RedisBroker:
    url: str
    prefix: str
    client: object  # redis.Redis

    def llen(self, queue: str) -> int:
        return self.client.llen(self.prefix + queue)

    def messages(self, queue: str) -> list[bytes]:
        return self.client.lrange(self.prefix + queue, 0, -1)


@pytest.fixture
def redis_broker() -> Iterator[RedisBroker]:
    reason = redis_unavailable()
    if reason:
        pytest.skip(reason)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"srnet_test_{secrets.token_hex(6)}:"
    try:
        yield RedisBroker(REDIS_URL, prefix, client)
    finally:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def pg_url(postgres_url: str) -> str:
    _empty_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def service_settings(pg_url: str, redis_broker: RedisBroker, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=pg_url,
        broker_url=redis_broker.url,
        broker_key_prefix=redis_broker.prefix,
        artifact_store=f"file://{tmp_path / 'artifacts'}",
        broker_connect_timeout_s=1.0,
    )
