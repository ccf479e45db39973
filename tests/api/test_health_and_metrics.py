"""/healthz (database and broker), Prometheus /metrics, OpenAPI declarations, no torch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from persistence.broker import CeleryJobSender
from persistence.settings import Settings
from tests.persistence.fixtures import make_owner

ROOT = Path(__file__).resolve().parents[2]


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_healthz_ok_with_the_embedded_broker(settings, tmp_path):
    embedded = settings.model_copy(
        update={"broker_url": f"sqla+sqlite:///{tmp_path / 'broker' / 'broker.db'}"}
    )
    with TestClient(create_app(embedded)) as client:
        response = client.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"broker": "ok", "database": "ok"},
        "detail": None,
    }


def test_healthz_503_names_a_dead_broker(settings):
    dead = settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{dead_port()}/0", "broker_connect_timeout_s": 1.0}
    )
    app = create_app(dead, enqueuer=CeleryJobSender.from_settings(dead))
    with TestClient(app) as client:
        response = client.get("/healthz")
        _, key = make_owner(app.state.database)
        with_key = client.get("/healthz", headers={"X-API-Key": key})
        wrong_key = client.get("/healthz", headers={"X-API-Key": key + "x"})
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["detail"] == "broker down"
    # Anonymous callers learn up or down, never the error (it names hosts and ports).
    assert body["checks"] == {"broker": "down", "database": "ok"}
    assert wrong_key.json()["checks"] == {"broker": "down", "database": "ok"}
    # A key holder is told why.
    assert with_key.status_code == 503
    assert with_key.json()["checks"]["broker"].startswith("down:")
    assert "Connection refused" in with_key.json()["checks"]["broker"]


def test_healthz_503_names_a_dead_database(enqueuer, store):
    settings = Settings(
        _env_file=None, database_url=f"postgresql://nobody@127.0.0.1:{dead_port()}/x"
    )
    with TestClient(create_app(settings, enqueuer=enqueuer, artifact_store=store)) as client:
        response = client.get("/healthz")
        keyed = client.get("/healthz", headers={"X-API-Key": "srn_" + "k" * 43})
    assert response.status_code == 503
    assert response.json()["detail"] == "database down"
    # Not the host, port or database name the connection error names (issue 19 item 15).
    assert response.json()["checks"] == {"broker": "ok", "database": "down"}
    assert keyed.json()["checks"] == {"broker": "ok", "database": "down"}  # cannot check it


def test_prometheus_metrics(client, auth):
    client.post("/jobs", json={}, headers=auth)
    client.post("/jobs", json={}, headers=auth)
    client.get("/jobs/00000000-0000-0000-0000-000000000000", headers=auth)
    client.post("/jobs", content=b"x" * 70_000, headers=auth)
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'srnet_jobs{status="queued"} 2.0' in text
    assert 'srnet_jobs{status="running"} 0.0' in text
    assert 'srnet_http_requests_total{method="GET",route="/jobs/{job_id}",status="404"} 1.0' in text
    assert 'srnet_http_requests_total{method="POST",route="/jobs",status="201"} 2.0' in text
    assert 'srnet_http_request_duration_seconds_count{method="POST",route="/jobs"} 2.0' in text
    # The body limit answers before routing; the answer is still counted.
    assert 'srnet_http_requests_total{method="POST",route="<unmatched>",status="413"} 1.0' in text
    # Route templates, never raw ids: one series per route.
    assert "00000000-0000" not in text


def test_openapi_declares_typed_errors(client):
    spec = client.get("/openapi.json").json()
    post = spec["paths"]["/jobs"]["post"]["responses"]
    assert {"201", "200", "401", "409", "413", "422"} <= set(post)
    download = spec["paths"]["/jobs/{job_id}/artifacts/{artifact_id}"]["get"]["responses"]
    assert {"200", "206", "304", "404", "416"} <= set(download)
    assert "job_not_found" in download["404"]["description"]
    assert "artifact_not_found" in download["404"]["description"]
    assert spec["paths"]["/healthz"]["get"]["responses"]["503"]
    schemes = spec["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schemes)


def test_the_api_never_imports_torch(tmp_path):
    code = (
        "import json, sys\n"
        "import api.main\n"
        "from persistence.settings import Settings\n"
        "api.main.create_app(Settings(_env_file=None, database_url='sqlite://',\n"
        f"    broker_url='sqla+sqlite:///{tmp_path}/broker.db',\n"
        f"    artifact_store='file://{tmp_path}/artifacts'))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert "api.main" in loaded and "sqlalchemy" in loaded  # the probe saw the real import
    assert not {"torch", "transformers", "datasets"} & loaded
    # From srcore only the torch-free modules the API is allowed to use.
    srcore = {m for m in loaded if m == "srcore" or m.startswith("srcore.")}
    assert all(m == "srcore" or m.startswith("srcore.jobspec") for m in srcore), srcore
