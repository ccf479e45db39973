"""POST/GET /studies, the table, the plot, cancel: validation before anything is stored (422
naming the axis, the grid cap stated), child jobs through the jobs' path, owner isolation, the
table from the children's recorded selected points."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid

import pytest
from sqlalchemy import func, select

from persistence.repositories import ArtifactRepository, JobRepository, MetricRepository
from persistence.tables import ArtifactKind, Job, JobStatus, Study
from srcore.jobspec.study import MAX_STUDY_JOBS
from srcore.jobspec.study_table import read_seeds_csv, read_table_csv

BASE = {"pruning": {"sparsities": [0.5]}, "training": {"seeds": [1, 2], "max_steps": 5}}
STUDY = {
    "name": "losses",
    "base": BASE,
    "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
}


def counts(database) -> tuple[int, int]:
    with database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Study)),
            session.scalar(select(func.count()).select_from(Job)),
        )


def post(client, auth, body=STUDY, **headers):
    return client.post("/studies", json=body, headers={**auth, **headers})


def test_a_study_creates_its_child_jobs_then_enqueues_them(client, auth, enqueuer):
    response = post(client, auth)
    assert response.status_code == 201, response.text
    study = response.json()
    assert study["status"] == "queued" and study["jobs"] == 4
    assert study["counts"]["queued"] == 4 and study["counts"]["running"] == 0
    keys = [c["key"] for c in study["children"]]
    assert keys == ["debias.loss=none", "debias.loss=poe", "reference:none", "reference:poe"]
    assert [c["role"] for c in study["children"]] == ["search"] * 2 + ["reference"] * 2
    assert study["children"][1]["label"] == "loss poe"
    # Every child is an ordinary job: committed before it was sent, listed in /jobs.
    assert sorted(str(j) for j, _ in enqueuer.sent) == sorted(
        c["job_id"] for c in study["children"]
    )
    assert enqueuer.seen_committed == [True] * 4
    listed = client.get("/jobs", headers=auth).json()
    assert listed["count"] == 4
    poe = client.get(f"/jobs/{study['children'][1]['job_id']}", headers=auth).json()
    assert poe["spec"]["debias"]["loss"] == "poe" and poe["name"] == "losses · loss poe"
    assert poe["spec"]["training"]["seeds"] == [1, 2]
    reference = client.get(f"/jobs/{study['children'][3]['job_id']}", headers=auth).json()
    assert reference["spec"]["pruning"]["method"] == "magnitude"
    assert study["table"] == []  # nothing selected yet


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"axes": [{"path": "debias.los", "values": ["poe"]}]}, ["body", "axes", 0, "path"],
         "debias.loss"),
        ({"axes": [{"path": "debias.loss", "values": ["none"]},
                   {"path": "pruning.method", "values": ["mask_training", "snip"]}]},
         ["body", "axes", 1], "pruning.method"),
        ({"axes": [{"path": "training.learning_rate", "values": [1e-4] * 9},
                   {"path": "training.epochs", "values": [1, 2, 3, 4, 5, 6, 7, 8]}]},
         ["body", "axes"], f"at most {MAX_STUDY_JOBS}"),
        ({"rows": [{"name": "x", "overrides": {"pruning.sparsity": 0.5}}]},
         ["body", "rows", 0, "overrides"], "pruning.sparsities"),
        ({"axes": [{"path": "training.seeds", "values": [[1]]}]}, ["body"], "inside each job"),
        ({"base": {"pruning": {"sparsities": [1.5]}}},
         ["body", "base", "pruning", "sparsities", 0], ""),
        ({"colour": "red"}, ["body", "colour"], ""),
    ],
)  # fmt: skip
def test_an_invalid_study_is_422_naming_the_field_and_stores_nothing(
    client, auth, enqueuer, app_database, change, loc, words
):
    response = post(client, auth, {**STUDY, **change})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert errors[0]["loc"] == loc, errors
    assert words in errors[0]["msg"]
    assert counts(app_database) == (0, 0)
    assert enqueuer.sent == []


def test_a_child_the_service_refuses_is_named_by_its_axis(client, auth, app_database):
    """A job's checks beyond its model (here DATA_ROOTS) run on every child before anything
    is stored."""
    train = {"format": "glue_mnli_tsv", "path": "/etc/passwd"}
    body = {**STUDY, "axes": [STUDY["axes"][0], {"path": "data.train", "values": [None, train]}]}
    response = post(client, auth, body)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "axes", 1] and error["type"] == "path_not_allowed"
    assert 'data.train={"format": "glue_mnli_tsv"' in error["msg"]
    assert "data.train.path: local path not allowed" in error["msg"]
    assert counts(app_database) == (0, 0)
    base = post(client, auth, {**STUDY, "base": {**BASE, "data": {"train": train}}})
    assert base.json()["detail"][0]["loc"] == ["body", "base", "data", "train", "path"]


def test_idempotent_submission(client, auth):
    first = post(client, auth, **{"Idempotency-Key": "study-1"})
    again = post(client, auth, **{"Idempotency-Key": "study-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    other = post(client, auth, {**STUDY, "name": "other"}, **{"Idempotency-Key": "study-1"})
    assert other.status_code == 409


def test_concurrent_submissions_with_one_key_make_one_study(client, auth, enqueuer, app_database):
    """The jobs' race rule holds for studies too (one submission helper): the loser's insert
    hits the unique key, rolls back and answers the winner's study; its jobs are sent once."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: post(client, auth, **{"Idempotency-Key": "race"}),
                                  range(4)))  # fmt: skip
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201]
    assert len({r.json()["id"] for r in responses}) == 1
    studies, jobs = counts(app_database)
    assert studies == 1 and len(enqueuer.sent) == jobs == 4


def test_others_see_nothing(client, auth, other_auth):
    study = post(client, auth).json()
    sid = study["id"]
    for path in (f"/studies/{sid}", f"/studies/{sid}/table", f"/studies/{sid}/table?format=csv",
                 f"/studies/{sid}/plot.png", "/studies/not-a-uuid"):  # fmt: skip
        response = client.get(path, headers=other_auth)
        assert response.status_code == 404 and response.json()["type"] == "study_not_found"
    assert client.post(f"/studies/{sid}/cancel", headers=other_auth).status_code == 404
    assert client.get("/studies", headers=other_auth).json() == {
        "data": [], "count": 0, "next_cursor": None,
    }  # fmt: skip
    child = study["children"][0]["job_id"]
    assert client.get(f"/jobs/{child}", headers=other_auth).status_code == 404
    assert client.get("/studies", headers={}).status_code == 401


def test_list_is_paginated_newest_first(client, auth):
    ids = [post(client, auth, {**STUDY, "name": f"s{i}"}).json()["id"] for i in range(3)]
    page = client.get("/studies?limit=2", headers=auth).json()
    assert page["count"] == 3 and [s["id"] for s in page["data"]] == ids[::-1][:2]
    assert page["data"][0]["status"] == "queued" and page["data"][0]["jobs"] == 4
    rest = client.get(f"/studies?limit=2&cursor={page['next_cursor']}", headers=auth).json()
    assert [s["id"] for s in rest["data"]] == ids[:1] and rest["next_cursor"] is None
    assert client.get("/studies?cursor=garbage", headers=auth).status_code == 422


def test_cancel_cascades_to_every_unfinished_child(client, auth, app_database):
    study = post(client, auth).json()
    children = [uuid.UUID(c["job_id"]) for c in study["children"]]
    with app_database.session() as session:
        jobs = JobRepository(session)
        jobs.claim(children[0], "w1")
        jobs.claim(children[1], "w2")
        jobs.transition(children[1], JobStatus.succeeded, worker_id="w2")
        session.commit()
    running = client.get(f"/studies/{study['id']}", headers=auth).json()
    assert running["status"] == "running"
    response = client.post(f"/studies/{study['id']}/cancel", headers=auth)
    assert response.status_code == 200, response.text
    statuses = {c["key"]: c["status"] for c in response.json()["children"]}
    assert statuses == {"debias.loss=none": "cancelling", "debias.loss=poe": "succeeded",
                        "reference:none": "cancelled", "reference:poe": "cancelled"}  # fmt: skip
    with app_database.session() as session:
        JobRepository(session).transition(children[0], JobStatus.cancelled, worker_id="w1")
        session.commit()
    done = client.get(f"/studies/{study['id']}", headers=auth).json()
    assert done["status"] == "cancelled" and done["counts"]["cancelled"] == 3
    again = client.post(f"/studies/{study['id']}/cancel", headers=auth)
    assert again.status_code == 409 and again.json()["type"] == "study_not_cancellable"


def sets(dev: float, non_entailed: float, *, collapsed: bool = False) -> dict:
    return {
        "dev": {"accuracy": dev, "n": 100, "collapsed": False, "majority_share": 0.4},
        "hans": {"accuracy": 0.5, "entailed": 1 - non_entailed, "non_entailed": non_entailed,
                 "n": 300, "collapsed": collapsed, "majority_share": 0.99 if collapsed else 0.6},
        "selection": dev, "sparsity": 0.5, "train_loss": 0.3,
    }  # fmt: skip


def record(database, job_id: str, stage: str, seed: int, sparsity: float, payload: dict,
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


def test_the_table_and_csv_come_from_the_recorded_selected_points(client, auth, app_database):
    study = post(client, auth).json()
    job = {c["key"]: c["job_id"] for c in study["children"]}
    movement = {"differ_fraction": 0.02, "flipped_fraction": 0.01}
    for seed, dev in ((1, 0.60), (2, 0.64)):
        record(app_database, job["debias.loss=poe"], "search", seed, 0.5,
               {**sets(dev, 0.30), "movement": movement})  # fmt: skip
        record(app_database, job["debias.loss=poe"], "dense", seed, 0.0, sets(0.7, 0.1))
        record(
            app_database, job["reference:none"], "dense", seed, 0.0, sets(0.70 + seed / 100, 0.1)
        )
        record(app_database, job["reference:none"], "search", seed, 0.5, sets(0.5, 0.9,
               collapsed=seed == 2))  # fmt: skip
    # Not selected, or not a table stage: left out.
    record(app_database, job["debias.loss=poe"], "search", 3, 0.5, sets(0.1, 0.1), selected=False)
    record(app_database, job["reference:poe"], "teacher", 1, 0.0, sets(0.1, 0.1))

    table = client.get(f"/studies/{study['id']}/table", headers=auth).json()
    assert table["study"]["name"] == "losses"
    by = {(r["row"], r["sparsity"], r["metric"]): r for r in table["records"]}
    poe = by[("loss poe", 0.5, "dev.accuracy")]
    assert poe["mean"] == pytest.approx(0.62) and poe["n"] == 2
    assert poe["sd"] == pytest.approx(0.028284, abs=1e-5)
    assert by[("loss poe", 0.5, "mask.differ_fraction")]["mean"] == pytest.approx(0.02)
    assert ("loss poe", 0.0, "dev.accuracy") not in by  # the references hold the dense models
    assert by[("dense CE", 0.0, "dev.accuracy")]["mean"] == pytest.approx(0.715)
    magnitude = by[("magnitude CE", 0.5, "hans.non_entailed")]
    assert magnitude["collapsed"] == 1 and magnitude["n"] == 2
    assert by[("loss poe", 0.5, "hans.non_entailed")]["collapsed"] == 0
    assert not any(r["metric"].startswith(("selection", "sparsity", "movement", "train_loss"))
                   for r in table["records"])  # fmt: skip
    assert not any(r["row"] == "loss none" for r in table["records"])  # nothing recorded yet

    response = client.get(f"/studies/{study['id']}/table?format=csv", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert next(csv.reader(io.StringIO(response.text)))[:3] == ["row", "role", "setting"]
    rows = read_table_csv(response.text)
    assert len(rows) == len(table["records"])
    assert {(r["row"], r["metric"]) for r in rows} == {(r["row"], r["metric"]) for r in
                                                       table["records"]}  # fmt: skip
    detail = client.get(f"/studies/{study['id']}", headers=auth).json()
    assert len(detail["table"]) == len(table["records"])
    assert client.get(f"/studies/{study['id']}/table?format=xml", headers=auth).status_code == 422


def add_mask(database, job_id: str, seed: int, sparsity: float, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    with database.session() as session:
        ArtifactRepository(session).add(
            uuid.UUID(job_id), kind=ArtifactKind.mask, name=f"mask-{seed}.safetensors",
            size=len(data), sha256=digest, data=data, seed=seed, sparsity=sparsity,
        )  # fmt: skip
        session.commit()
    return digest


def test_the_table_serves_per_seed_records_and_paired_comparisons(client, auth, app_database):
    study = post(client, auth).json()
    sid, job = study["id"], {c["key"]: c["job_id"] for c in study["children"]}
    masks = {}
    for seed, poe_dev, ce_dev in ((1, 0.60, 0.58), (2, 0.64, 0.61), (3, 0.63, 0.62)):
        record(app_database, job["debias.loss=poe"], "search", seed, 0.5, sets(poe_dev, 0.3))
        record(app_database, job["debias.loss=none"], "search", seed, 0.5, sets(ce_dev, 0.1))
        record(app_database, job["reference:none"], "dense", seed, 0.0, sets(0.7, 0.05))
        masks[seed] = add_mask(app_database, job["debias.loss=poe"], seed, 0.5, bytes([seed] * 8))
    table = client.get(f"/studies/{sid}/table", headers=auth).json()
    poe_dev = [r for r in table["seeds"] if (r["row"], r["metric"]) == ("loss poe", "dev.accuracy")]
    assert [(r["seed"], r["value"], r["job"], r["selected_step"], r["mask_sha256"])
            for r in poe_dev] == [(s, v, job["debias.loss=poe"], 10, masks[s])
                                  for s, v in ((1, 0.60), (2, 0.64), (3, 0.63))]  # fmt: skip
    dense = [r for r in table["seeds"] if r["row"] == "dense CE"]
    assert dense and all(r["mask_sha256"] is None for r in dense)
    assert "t interval" in table["interval"]
    pairs = {(c["row_a"], c["row_b"], c["metric"]): c for c in table["comparisons"]}
    vs_ce = pairs[("loss poe", "loss none", "dev.accuracy")]
    assert vs_ce["mean_difference"] == pytest.approx(0.02) and vs_ce["seeds"] == [1, 2, 3]
    assert vs_ce["low"] == pytest.approx(0.02 - 4.302653 * 0.01 / 3**0.5, abs=1e-5)
    assert pairs[("loss poe", "dense CE", "dev.accuracy")]["sparsity_b"] == 0.0

    one = client.get(f"/studies/{sid}/table", params={"a": "loss poe", "b": "dense CE"},
                     headers=auth).json()  # fmt: skip
    assert {(c["row_a"], c["row_b"]) for c in one["comparisons"]} == {("loss poe", "dense CE")}
    assert {c["metric"] for c in one["comparisons"]} >= {"dev.accuracy", "hans.non_entailed"}
    seeds_csv = client.get(f"/studies/{sid}/table?format=csv&records=seeds", headers=auth)
    assert seeds_csv.status_code == 200 and "-seeds.csv" in seeds_csv.headers["content-disposition"]
    assert read_seeds_csv(seeds_csv.text) == table["seeds"]
    comparisons = client.get(
        f"/studies/{sid}/table", params={"format": "csv", "records": "comparisons"}, headers=auth
    )
    assert comparisons.text.startswith("row_a,sparsity_a,row_b,sparsity_b,metric,n,")
    assert len(comparisons.text.splitlines()) == len(table["comparisons"]) + 1
    for params, field in (
        ({"a": "loss poe"}, "b"),
        ({"a": "loss poe", "b": "nope"}, "b"),
        ({"a": "loss poe", "b": "loss none", "sparsity": 0.7}, "sparsity"),
    ):
        bad = client.get(f"/studies/{sid}/table", params=params, headers=auth)
        assert bad.status_code == 422, params
        assert bad.json()["detail"][0]["loc"] == ["query", field]


def test_the_plot_is_a_png(client, auth, app_database):
    study = post(client, auth).json()
    job = {c["key"]: c["job_id"] for c in study["children"]}
    record(app_database, job["debias.loss=poe"], "search", 1, 0.5, sets(0.6, 0.3))
    record(app_database, job["reference:none"], "dense", 1, 0.0, sets(0.7, 0.1))
    response = client.get(f"/studies/{study['id']}/plot.png", headers=auth)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG\r\n\x1a\n") and len(response.content) > 5000


def test_openapi_declares_the_studies_errors(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"401", "409", "413", "422"} <= set(paths["/studies"]["post"]["responses"])
    assert "404" in paths["/studies/{study_id}"]["get"]["responses"]
    assert "409" in paths["/studies/{study_id}/cancel"]["post"]["responses"]
    assert (
        "image/png" in paths["/studies/{study_id}/plot.png"]["get"]["responses"]["200"]["content"]
    )
