"""PATCH /jobs/{id} (tags and note: owner only, bounded, 422 naming the field) and GET /runs
(one row per job × stage × sparsity from the selected points in the database, seeds averaged;
filters, sorting, CSV)."""

from __future__ import annotations

import csv
import io
import uuid

import pytest

from api.jobs.schemas import MAX_NOTE_LENGTH, MAX_TAG_LENGTH, MAX_TAGS
from persistence.repositories import JobRepository, MetricRepository

POE = {"debias": {"loss": "poe"}, "pruning": {"sparsities": [0.5, 0.7]},
       "training": {"seeds": [1, 2], "max_steps": 5}}  # fmt: skip
CE_IMP = {"pruning": {"method": "imp", "sparsities": [0.5]}, "training": {"max_steps": 5}}


def submit(client, auth, spec) -> str:
    response = client.post("/jobs", json=spec, headers=auth)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def sets(dev: float, hans: float, *, collapsed: bool = False) -> dict:
    return {
        "dev": {"accuracy": dev, "n": 100, "collapsed": False},
        "hans": {"accuracy": hans, "non_entailed": hans - 0.2, "n": 300, "collapsed": collapsed},
        "selection": dev, "train_loss": 0.3, "movement": {"differ_fraction": 0.1},
    }  # fmt: skip


def record(database, job_id: str, stage: str, seed: int, sparsity: float | None, payload: dict,
           selected: bool = True) -> None:  # fmt: skip
    with database.session() as session:
        MetricRepository(session).add(
            uuid.UUID(job_id),
            stage=stage,
            step=10,
            seed=seed,
            sparsity=sparsity,
            payload=payload,
            selected=selected,
        )
        session.commit()  # fmt: skip


# --- tags and note ---------------------------------------------------------------------------


def test_patch_sets_tags_and_note_and_either_alone_keeps_the_other(client, auth):
    job = submit(client, auth, POE)
    response = client.patch(f"/jobs/{job}", json={"tags": ["baseline", "poe", "baseline"],
                                                  "note": "first try"}, headers=auth)  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["baseline", "poe"]  # duplicates dropped, order kept
    assert response.json()["note"] == "first try"
    client.patch(f"/jobs/{job}", json={"note": "second thoughts"}, headers=auth)
    shown = client.get(f"/jobs/{job}", headers=auth).json()
    assert shown["tags"] == ["baseline", "poe"] and shown["note"] == "second thoughts"
    listed = client.get("/jobs", headers=auth).json()["data"][0]
    assert listed["tags"] == ["baseline", "poe"]
    cleared = client.patch(f"/jobs/{job}", json={"tags": [], "note": ""}, headers=auth).json()
    assert cleared["tags"] == [] and cleared["note"] is None
    assert cleared["status"] == "queued" and cleared["spec"]["debias"]["loss"] == "poe"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"tags": ["has space"]}, ["body", "tags", 0]),
        ({"tags": ["ok", "x" * (MAX_TAG_LENGTH + 1)]}, ["body", "tags", 1]),
        ({"tags": [""]}, ["body", "tags", 0]),
        ({"tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, ["body", "tags"]),
        ({"tags": "baseline"}, ["body", "tags"]),
        ({"note": "n" * (MAX_NOTE_LENGTH + 1)}, ["body", "note"]),
        ({"note": "a\x00b"}, ["body", "note"]),
        ({"colour": "red"}, ["body", "colour"]),
        ({}, ["body"]),
    ],
)
def test_patch_refuses_what_breaks_a_bound_naming_the_field(client, auth, body, loc):
    job = submit(client, auth, POE)
    response = client.patch(f"/jobs/{job}", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc
    assert client.get(f"/jobs/{job}", headers=auth).json()["tags"] == []


def test_only_the_owner_may_annotate(client, auth, other_auth):
    job = submit(client, auth, POE)
    response = client.patch(f"/jobs/{job}", json={"note": "mine now"}, headers=other_auth)
    assert response.status_code == 404 and response.json()["type"] == "job_not_found"
    assert client.patch(f"/jobs/{job}", json={"note": "x"}).status_code == 401
    assert client.get(f"/jobs/{job}", headers=auth).json()["note"] is None


def test_annotating_never_touches_what_the_worker_writes(client, auth, app_database):
    job = submit(client, auth, POE)
    with app_database.session() as session:
        jobs = JobRepository(session)
        jobs.claim(uuid.UUID(job), "w1")
        jobs.update_progress(uuid.UUID(job), "w1", step=7, total=10, examples_per_s=1.0,
                             eta_s=3.0)  # fmt: skip
        session.commit()
    done = client.patch(f"/jobs/{job}", json={"tags": ["running-one"]}, headers=auth).json()
    assert done["status"] == "running" and done["progress"]["step"] == 7


# --- the runs table --------------------------------------------------------------------------


@pytest.fixture
def two_jobs(client, auth, app_database) -> tuple[str, str]:
    poe = submit(client, auth, POE)
    imp = submit(client, auth, CE_IMP)
    for seed, lift in ((1, 0.0), (2, 0.02)):
        record(app_database, poe, "dense", seed, None, sets(0.80 + lift, 0.55))
        record(app_database, poe, "search", seed, 0.5, sets(0.76 + lift, 0.62 + lift))
        record(app_database, poe, "search", seed, 0.7, sets(0.70, 0.50, collapsed=seed == 2))
    record(app_database, poe, "search", 3, 0.5, sets(0.1, 0.1), selected=False)  # not selected
    record(app_database, poe, "teacher", 1, None, sets(0.1, 0.1))  # not a table stage
    record(app_database, imp, "search", 1, 0.5, sets(0.78, 0.52))
    client.patch(f"/jobs/{poe}", json={"tags": ["paper", "poe"], "note": "n"}, headers=auth)
    client.patch(f"/jobs/{imp}", json={"tags": ["paper"]}, headers=auth)
    return poe, imp


def test_runs_average_the_seeds_of_each_job_stage_and_sparsity(client, auth, two_jobs):
    poe, imp = two_jobs
    table = client.get("/runs", headers=auth).json()
    assert table["count"] == 4 and table["ood_sets"] == ["hans"] and not table["truncated"]
    rows = {(r["job_id"], r["stage"], r["sparsity"]): r for r in table["data"]}
    # Newest job first, then a job's rows by stage and sparsity.
    assert [(r["job_id"], r["stage"], r["sparsity"]) for r in table["data"]] == [
        (imp, "search", 0.5),
        (poe, "dense", 0.0),
        (poe, "search", 0.5),
        (poe, "search", 0.7),
    ]
    half = rows[(poe, "search", 0.5)]
    assert half["id_metric"] == pytest.approx(0.77) and half["ood_metric"] == pytest.approx(0.63)
    assert half["seeds"] == [1, 2] and half["n"] == 2 and half["id_set"] == "dev"
    assert half["ood"] == {"hans": pytest.approx(0.63)} and half["ood_set"] == "hans"
    assert (half["task"], half["loss"], half["method"], half["scenario"]) == (
        "mnli",
        "poe",
        "mask_training",
        "finetuned",
    )
    assert half["tags"] == ["paper", "poe"] and half["note"] == "n" and not half["collapsed"]
    assert rows[(poe, "search", 0.7)]["collapsed"] is True
    assert rows[(poe, "search", 0.7)]["collapsed_sets"] == ["hans"]
    # The dense model of a job whose dense stage trains with cross-entropy has loss none.
    assert rows[(poe, "dense", 0.0)]["loss"] == "none"
    assert rows[(imp, "search", 0.5)]["method"] == "imp"
    assert rows[(imp, "search", 0.5)]["loss"] == "none" and rows[(imp, "search", 0.5)]["n"] == 1


def test_runs_filter_and_sort(client, auth, two_jobs):
    poe, imp = two_jobs

    def get(query: str) -> list[tuple[str, str, float]]:
        response = client.get(f"/runs?{query}", headers=auth)
        assert response.status_code == 200, response.text
        return [(r["job_id"], r["stage"], r["sparsity"]) for r in response.json()["data"]]

    assert get("loss=poe") == [(poe, "search", 0.5), (poe, "search", 0.7)]
    assert get("method=imp") == [(imp, "search", 0.5)]
    assert get("sparsity=0.5") == [(imp, "search", 0.5), (poe, "search", 0.5)]
    assert get("sparsity=0.5&tag=poe") == [(poe, "search", 0.5)]
    assert get("tag=paper&tag=poe&stage=dense") == [(poe, "dense", 0.0)]
    assert get("task=qqp") == [] and get("scenario=pretrained_frozen") == []
    assert get("tag=nobody") == []
    assert get("stage=search&sort=-id_metric") == [
        (imp, "search", 0.5),
        (poe, "search", 0.5),
        (poe, "search", 0.7),
    ]
    assert get("stage=search&sort=ood.hans") == [
        (poe, "search", 0.7),
        (imp, "search", 0.5),
        (poe, "search", 0.5),
    ]
    assert get("sort=method,-sparsity")[0] == (imp, "search", 0.5)
    assert get(f"study={uuid.uuid4()}") == []
    for bad, field in (("sort=colour", "sort"), ("loss=focal", "loss"), ("sparsity=2", "sparsity"),
                       ("study=nope", "study"), ("tag=" + "x" * 41, "tag")):  # fmt: skip
        response = client.get(f"/runs?{bad}", headers=auth)
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"][:2] == ["query", field], response.text


def test_runs_csv_has_a_column_per_ood_set(client, auth, two_jobs):
    poe, _ = two_jobs
    response = client.get("/runs?format=csv&loss=poe&sort=sparsity", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="srnet-runs.csv"' in response.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert [line["sparsity"] for line in lines] == ["0.500000", "0.700000"]
    assert float(lines[0]["ood.hans"]) == pytest.approx(0.63)
    assert lines[0]["tags"] == "paper;poe" and lines[0]["seeds"] == "1;2"
    assert lines[1]["collapsed"] == "True" and lines[1]["collapsed_sets"] == "hans"
    assert lines[0]["job_id"] == poe


def test_runs_are_the_owners_only_and_include_study_children(client, auth, other_auth,
                                                             two_jobs, app_database):  # fmt: skip
    assert client.get("/runs", headers=other_auth).json()["data"] == []
    assert client.get("/runs").status_code == 401
    study = client.post("/studies", headers=auth, json={
        "name": "losses", "base": {"pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}},
        "axes": [{"path": "debias.loss", "values": ["reweight"]}]}).json()  # fmt: skip
    child = study["children"][0]["job_id"]
    record(app_database, child, "search", 1, 0.5, sets(0.7, 0.6))
    rows = client.get(f"/runs?study={study['id']}", headers=auth).json()["data"]
    assert [(r["job_id"], r["study_name"], r["loss"]) for r in rows] == [
        (child, "losses", "reweight")
    ]
    assert rows[0]["study_id"] == study["id"]
    everything = client.get("/runs", headers=auth).json()
    assert everything["count"] == 5


def test_openapi_describes_runs_and_patch(client):
    spec = client.get("/openapi.json").json()
    runs = spec["paths"]["/runs"]["get"]
    assert "seed" in runs["description"] and "text/csv" in runs["responses"]["200"]["content"]
    assert {p["name"] for p in runs["parameters"]} >= {
        "loss",
        "method",
        "scenario",
        "sparsity",
        "task",
        "tag",
        "study",
        "sort",
        "format",
    }
    patch = spec["paths"]["/jobs/{job_id}"]["patch"]
    assert {"401", "404", "422"} <= set(patch["responses"])
