"""Client and CLI fixtures: one real API per test module (uvicorn on a loopback port, SQLite
migrated with Alembic); each test gets its own owner and key, so tests do not see each other's
jobs."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from srnet.client import SRNetClient
from tests.client.live_service import LiveService, run_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    with run_service(tmp_path_factory.mktemp("client-service")) as live:
        yield live


@pytest.fixture
def key(service: LiveService) -> str:
    return service.key_for(f"lab-{secrets.token_hex(4)}")


@pytest.fixture
def client(service: LiveService, key: str) -> Iterator[SRNetClient]:
    with SRNetClient(service.url, key, timeout=10) as api_client:
        yield api_client
