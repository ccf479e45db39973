"""Every route that reads or writes the database declares the JSON 503 `database_unavailable`
(with Retry-After) that answers while the database restarts (tests/api/test_database_down.py
proves the answer itself). Every route with an API key reads the database (the key lookup)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.errors import DatabaseUnavailable

METHODS = {"get", "post", "put", "patch", "delete"}


def test_every_database_route_declares_the_503(client: TestClient):
    schema = client.get("/openapi.json").json()
    checked = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            answer = operation["responses"].get("503")
            where = f"{method.upper()} {path}"
            assert answer is not None, f"{where} does not declare the 503"
            body = answer["content"]["application/json"]["schema"]["$ref"]
            if path == "/healthz":  # its own body: which dependency is down
                assert body.endswith("/Health")
                continue
            assert operation.get("security"), where
            assert DatabaseUnavailable.type in answer["description"], where
            assert body == "#/components/schemas/ErrorBody", where
            assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer"}, where
            checked.append(where)
    # jobs, studies, runs and artifacts: all of them
    assert len(checked) >= 15, checked
    assert "GET /runs" in checked and "GET /jobs/{job_id}/artifacts/{artifact_id}" in checked
