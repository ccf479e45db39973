"""pruning.structure over HTTP (issue 21): a structured job is accepted and stored as asked;
a structure the service does not offer is a 422 naming the field, and nothing is queued."""

from __future__ import annotations


def test_a_structured_job_is_accepted_and_stored(client, auth, enqueuer):
    body = {"task": "mnli", "pruning": {"structure": "ffn_neurons", "method": "imp",
                                        "sparsities": [0.5]}}  # fmt: skip
    response = client.post("/jobs", json=body, headers=auth)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["spec"]["pruning"]["structure"] == "ffn_neurons"
    assert len(enqueuer.sent) == 1
    plain = client.post("/jobs", json={"task": "mnli"}, headers=auth).json()
    assert plain["spec"]["pruning"]["structure"] == "unstructured"
    assert plain["spec_hash"] != job["spec_hash"]


def test_an_unknown_structure_is_refused_naming_the_field(client, auth, enqueuer):
    body = {"pruning": {"structure": "heads_only"}}
    response = client.post("/jobs", json=body, headers=auth)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "pruning", "structure"]
    assert "ffn_neurons" in error["msg"]
    assert enqueuer.sent == []
