"""GET /jobs/{id}/metrics serves each point's payload typed as `evaluation` (issue 17 item 2):
the evaluated sets apart from the extras, declared in the OpenAPI document; and the runs table
reads its numbers through the same type."""

from __future__ import annotations

import uuid

from persistence.repositories import MetricRepository

SPEC = {"task": "mnli", "pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}}
HANS = {
    "accuracy": 0.55,
    "entailed": 0.9,
    "non_entailed": 0.2,
    "heuristics": {"lexical_overlap": {"accuracy": 0.6, "entailed": 0.95, "non_entailed": 0.25}},
    "n": 300,
    "majority_label": "entailment",
    "majority_share": 0.7,
    "collapsed": False,
}


def add_points(app_database, job_id: str) -> None:
    with app_database.session() as session:
        metrics = MetricRepository(session)
        for step, dev in ((10, 0.61), (20, 0.66)):
            metrics.add(
                uuid.UUID(job_id), stage="search", step=step, seed=1, sparsity=0.5,
                payload={"dev": {"accuracy": dev, "n": 64, "collapsed": False}, "hans": HANS,
                         "selection": dev, "sparsity": 0.5, "selectable": True,
                         "train_loss": 0.9 - dev},
                selected=step == 20,
            )  # fmt: skip
        session.commit()


def test_points_carry_the_typed_evaluation(client, auth, app_database):
    job_id = client.post("/jobs", json=SPEC, headers=auth).json()["id"]
    add_points(app_database, job_id)
    body = client.get(f"/jobs/{job_id}/metrics", headers=auth).json()
    (selected,) = body["selected"]
    evaluation = selected["evaluation"]
    assert sorted(evaluation["sets"]) == ["dev", "hans"]
    dev = evaluation["sets"]["dev"]
    assert (dev["accuracy"], dev["n"], dev["collapsed"]) == (0.66, 64, False)
    assert dev["f1"] is None and dev["heuristics"] is None  # every field, null where absent
    hans = evaluation["sets"]["hans"]
    assert {key: hans[key] for key in HANS} == HANS
    assert hans["heuristics"]["lexical_overlap"]["non_entailed"] == 0.25
    assert evaluation["selection"] == 0.66 and evaluation["sparsity"] == 0.5
    assert evaluation["train_loss"] == 0.9 - 0.66
    assert evaluation["extras"] == {"selectable": True}
    assert selected["payload"]["hans"] == HANS  # the raw payload stays, for older readers


def test_openapi_declares_the_evaluation(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    point = schemas["MetricPoint"]["properties"]["evaluation"]
    assert point["$ref"] == "#/components/schemas/Evaluation"
    evaluation = schemas["Evaluation"]["properties"]
    assert set(evaluation) == {"sets", "selection", "sparsity", "train_loss", "movement", "extras"}
    assert evaluation["sets"]["additionalProperties"]["$ref"] == "#/components/schemas/SetMetrics"
    set_fields = schemas["SetMetrics"]["properties"]
    assert {"accuracy", "f1", "n", "heuristics", "per_class", "collapsed"} <= set(set_fields)
    heuristic = set_fields["heuristics"]["anyOf"][0]["additionalProperties"]["$ref"]
    assert heuristic == "#/components/schemas/HeuristicMetrics"


def test_the_runs_table_reads_the_same_sets(client, auth, app_database):
    job_id = client.post("/jobs", json=SPEC, headers=auth).json()["id"]
    add_points(app_database, job_id)
    (row,) = client.get("/runs", headers=auth).json()["data"]
    assert row["id_metric"] == 0.66 and row["ood"] == {"hans": 0.55}
    assert row["collapsed"] is False and row["sparsity"] == 0.5
