"""The OpenAPI document explains itself (issue 12 item 8): every route has a description, every
field of every response body a description, and the submissions carry request examples taken
from the web form's presets that the service accepts as they are."""

from __future__ import annotations

import pytest

from api.jobs.examples import PRESETS

# FastAPI's own validation models and the bodies other domains own (errors, health).
NOT_OURS = {"HTTPValidationError", "ValidationError", "ErrorBody", "Health"}


@pytest.fixture
def openapi(client) -> dict:
    return client.get("/openapi.json").json()


def test_every_route_has_a_description(openapi):
    bare = [
        f"{method.upper()} {path}"
        for path, operations in openapi["paths"].items()
        if path != "/healthz"
        for method, operation in operations.items()
        if len(operation.get("description", "")) < 40
    ]
    assert bare == []


def test_every_response_field_has_a_description(openapi):
    missing = [
        f"{name}.{field}"
        for name, schema in openapi["components"]["schemas"].items()
        if name not in NOT_OURS
        for field, prop in schema.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert missing == []


def test_job_examples_are_the_presets_and_the_service_takes_them(openapi, client, auth):
    body = openapi["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    examples = body["examples"]
    assert list(examples) == [p.id for p in PRESETS]
    assert examples["mnli-poe-mask"]["summary"] == PRESETS[0].title
    assert examples["mnli-poe-mask"]["value"]["pruning"]["sparsities"] == [0.5, 0.7, 0.9]
    for preset_id, example in examples.items():
        response = client.post("/jobs", json=example["value"], headers=auth)
        assert response.status_code == 201, (preset_id, response.text)


def test_the_study_and_patch_examples_are_accepted(openapi, client, auth):
    post = openapi["paths"]["/studies"]["post"]["requestBody"]["content"]["application/json"]
    study = post["examples"]["losses"]["value"]
    response = client.post("/studies", json=study, headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["jobs"] == 4  # two losses and a dense reference each
    annotate = openapi["components"]["schemas"]["JobAnnotate"]["examples"][0]
    job = response.json()["children"][0]["job_id"]
    patched = client.patch(f"/jobs/{job}", json=annotate, headers=auth)
    assert patched.status_code == 200 and patched.json()["tags"] == annotate["tags"]
