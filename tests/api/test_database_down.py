"""The database restarting: every route answers a JSON 503 with Retry-After (never a plain-text
500), /healthz names the database, and the service recovers by itself once it is back."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.helpers.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def proxied(postgres_url, settings, enqueuer, store):
    from persistence.db import Database
    from tests.persistence.fixtures import _empty_postgres, make_owner

    _empty_postgres(postgres_url)
    parts = urlsplit(postgres_url)
    proxy = TcpProxy((parts.hostname, parts.port or 5432))
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}").geturl()
    key = make_owner(Database(url), "lab-restart")[1]
    configured = settings.model_copy(update={"database_url": url})
    app = create_app(configured, enqueuer=enqueuer, artifact_store=store)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, proxy, {"X-API-Key": key}
    proxy.close()


def test_a_database_restart_is_a_json_503_with_retry_after(proxied):
    client, proxy, auth = proxied
    assert client.get("/jobs", headers=auth).status_code == 200
    job = client.post("/jobs", json={"training": {"max_steps": 5}}, headers=auth).json()

    proxy.cut()
    for method, path in [
        ("GET", "/jobs"),
        ("GET", f"/jobs/{job['id']}"),
        ("GET", f"/jobs/{job['id']}/events"),
        ("GET", f"/jobs/{job['id']}/metrics"),
        ("GET", f"/jobs/{job['id']}/artifacts"),
        ("POST", "/jobs"),
        ("POST", f"/jobs/{job['id']}/cancel"),
    ]:
        body = {"training": {"max_steps": 5}} if method == "POST" and path == "/jobs" else None
        response = client.request(method, path, json=body, headers=auth)
        assert response.status_code == 503, (path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["Retry-After"]) > 0
        assert response.json()["type"] == "database_unavailable"
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.json()["checks"]["database"].startswith("down")
    assert health.json()["detail"] == "database down"

    proxy.restore()
    assert client.get(f"/jobs/{job['id']}", headers=auth).status_code == 200
    assert client.get("/healthz").json()["checks"]["database"] == "ok"
