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


def test_the_runs_table_shows_and_filters_the_structure(client, auth, enqueuer, app_database):
    from tests.api.test_runs import record, sets, submit

    plain = submit(client, auth, {"pruning": {"sparsities": [0.5]}})
    ffn = submit(client, auth, {"pruning": {"sparsities": [0.5], "structure": "ffn_neurons"}})
    record(app_database, plain, "search", 1, 0.5, sets(0.8, 0.6))
    record(app_database, ffn, "search", 1, 0.5, sets(0.7, 0.65))

    def rows(query: str = "") -> list[tuple[str, str]]:
        response = client.get(f"/runs?{query}", headers=auth)
        assert response.status_code == 200, response.text
        return [(r["job_id"], r["structure"]) for r in response.json()["data"]]

    assert rows() == [(ffn, "ffn_neurons"), (plain, "unstructured")]
    assert rows("structure=ffn_neurons") == [(ffn, "ffn_neurons")]
    assert rows("structure=unstructured") == [(plain, "unstructured")]
    assert rows("structure=ffn_neurons%2Bheads") == []
    assert rows("sort=-structure") == [(plain, "unstructured"), (ffn, "ffn_neurons")]
    response = client.get("/runs?structure=rows", headers=auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "structure"]
    csv_text = client.get("/runs?format=csv&sort=structure", headers=auth).text
    header, first = csv_text.splitlines()[:2]
    column = header.split(",").index("structure")
    assert first.split(",")[column] == "ffn_neurons"


def test_a_study_takes_structure_as_an_axis_over_http(client, auth, enqueuer):
    body = {"name": "structures", "base": {"pruning": {"sparsities": [0.5]},
                                           "training": {"max_steps": 5}},
            "axes": [{"path": "pruning.structure",
                      "values": ["unstructured", "ffn_neurons", "ffn_neurons+heads"]}],
            "dense_references": False}  # fmt: skip
    response = client.post("/studies", json=body, headers=auth)
    assert response.status_code == 201, response.text
    children = response.json()["children"]
    structures = [client.get(f"/jobs/{c['job_id']}", headers=auth).json()["spec"]["pruning"]
                  ["structure"] for c in children]  # fmt: skip
    assert structures == ["unstructured", "ffn_neurons", "ffn_neurons+heads"]
    bad = {**body, "axes": [{"path": "pruning.structure", "values": ["rows"]}]}
    response = client.post("/studies", json=bad, headers=auth)
    assert response.status_code == 422
    assert "structure" in response.text


def test_the_web_form_offers_structure_and_the_export_settings():
    from api.web.form import form_description

    form = form_description()
    fields = {f["path"]: f for f in form["fields"]}
    structure = fields["pruning.structure"]
    assert structure["kind"] == "enum" and structure["group"] == "pruning"
    assert structure["options"] == ["unstructured", "ffn_neurons", "ffn_neurons+heads"]
    assert structure["default"] == "unstructured"
    assert "intermediate_size" in structure["description"]
    assert fields["export.onnx"]["options"] == ["none", "fp32", "int8"]
    assert fields["export.measure"]["kind"] == "boolean" and fields["export.measure"]["default"]
    assert {"id": "export", "title": "Export"} in form["groups"]
