"""POST/GET /jobs, cancel, events, metrics: validation, idempotency, scoping, limits."""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from persistence.repositories import JobRepository, MetricRepository
from persistence.tables import Job, JobStatus

SPEC = {"task": "mnli", "pruning": {"sparsities": [0.5, 0.7]}, "training": {"max_steps": 5}}


def job_count(database) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(Job))


def post(client, auth, body=SPEC, **headers):
    return client.post("/jobs", json=body, headers={**auth, **headers})


def test_create_job_commits_then_enqueues(client, auth, enqueuer):
    response = post(client, auth)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "queued" and job["queue"] == "gpu" and job["attempt"] == 0
    assert job["spec"]["pruning"]["sparsities"] == [0.5, 0.7]
    assert job["spec"]["training"]["batch_size"] == 32  # defaults filled in
    assert len(job["spec_hash"]) == 64
    assert enqueuer.sent == [(uuid.UUID(job["id"]), "gpu")]
    assert enqueuer.seen_committed == [True]
    stored = client.get(f"/jobs/{job['id']}", headers=auth).json()
    assert stored["id"] == job["id"] and stored["created_at"] == job["created_at"]


def test_queue_can_be_chosen(client, auth, enqueuer):
    response = post(client, auth, {**SPEC, "queue": "cpu"})
    assert response.status_code == 201 and response.json()["queue"] == "cpu"
    assert enqueuer.sent[0][1] == "cpu"
    assert "queue" not in response.json()["spec"]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"pruning": {"sparsities": [1.5]}}, ["body", "pruning", "sparsities", 0]),
        ({"pruning": {"sparsities": []}}, ["body", "pruning", "sparsities"]),
        ({"training": {"batchsize": 3}}, ["body", "training", "batchsize"]),
        ({"task": "sst2"}, ["body", "task"]),
        ({"name": "x" * 201}, ["body", "name"]),
        ({"queue": "tpu"}, ["body", "queue"]),
        # srcore.jobspec.task_registry.resolve_task errors: same shape, loc at the field they name.
        ({"task": "fever"}, ["body", "data", "train"]),
        ({"evaluation": {"ood_sets": ["nope"]}}, ["body", "evaluation", "ood_sets"]),
        # Cross-field checks of JobSpec: loc at the field their message names.
        (
            {"debias": {"loss": "conf_reg", "teacher": {"source": "none"}}},
            ["body", "debias", "teacher"],
        ),
        ({"data": {"labels": ["a", "b"]}}, ["body", "data", "labels"]),
        ({"pruning": {"method": "imp", "sparsities": [0.55]}}, ["body", "pruning"]),
        # Local paths outside DATA_ROOTS (none by default): a job must not read worker files.
        (
            {"data": {"train": {"format": "pair_json", "path": "/etc/passwd"}}},
            ["body", "data", "train", "path"],
        ),
        ({"model": {"name_or_path": "../../var/artifacts"}}, ["body", "model", "name_or_path"]),
        (
            {"debias": {"loss": "poe", "bias": {"source": "file", "path": "~/bias.jsonl"}}},
            ["body", "debias", "bias", "path"],
        ),
        # One rule for every field that names something to load (srcore.jobspec.spec_paths).
        ({"model": {"name_or_path": "var/work/cache/dense"}}, ["body", "model", "name_or_path"]),
        ({"model": {"name_or_path": "./var/work"}}, ["body", "model", "name_or_path"]),
        (
            {"data": {"train": {"format": "pair_json", "hub": "../../var/work:train"}}},
            ["body", "data", "train", "hub"],
        ),
        (
            {"data": {"ood": {"h": {"format": "hans_tsv", "hub": "/etc/x:train"}}}},
            ["body", "data", "ood", "h", "hub"],
        ),
        (
            {"data": {"train": {"format": "pair_json", "path": "sample:../../../etc/passwd"}}},
            ["body", "data", "train", "path"],
        ),
        (
            {"data": {"ood_training": {"sources": [{"format": "hans_tsv", "path": "x.tsv"}]}}},
            ["body", "data", "ood_training", "sources", 0, "path"],
        ),
        (
            {"debias": {"loss": "conf_reg", "teacher": {"source": "file", "path": "t.jsonl"}}},
            ["body", "debias", "teacher", "path"],
        ),
    ],
)
def test_invalid_spec_is_422_naming_the_field_and_nothing_is_stored(
    client, auth, enqueuer, app_database, body, loc
):
    response = post(client, auth, body)
    assert response.status_code == 422, response.text
    locs = [error["loc"] for error in response.json()["detail"]]
    assert loc in locs, locs
    assert job_count(app_database) == 0
    assert enqueuer.sent == [] and enqueuer.seen_committed == []


def test_malformed_json_is_422(client, auth, app_database):
    response = client.post(
        "/jobs", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert job_count(app_database) == 0


def test_idempotency_key(client, auth, enqueuer, app_database):
    first = post(client, auth, **{"Idempotency-Key": "run-42"})
    assert first.status_code == 201
    # Same body, other key order and whitespace: the same request.
    same = client.post(
        "/jobs",
        content=json.dumps(dict(reversed(list(SPEC.items()))), indent=2),
        headers={**auth, "Idempotency-Key": "run-42", "Content-Type": "application/json"},
    )
    assert same.status_code == 200 and same.json()["id"] == first.json()["id"]
    other = post(client, auth, {**SPEC, "name": "other"}, **{"Idempotency-Key": "run-42"})
    assert other.status_code == 409
    assert other.json()["type"] == "idempotency_key_reused"
    new = post(client, auth, **{"Idempotency-Key": "run-43"})
    assert new.status_code == 201 and new.json()["id"] != first.json()["id"]
    assert len(enqueuer.sent) == 2 and job_count(app_database) == 2


def test_idempotency_key_is_per_owner(client, auth, other_auth):
    a = post(client, auth, **{"Idempotency-Key": "same"})
    b = post(client, other_auth, **{"Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


def test_concurrent_requests_with_one_key_make_one_job(client, auth, enqueuer, app_database):
    def submit(_):
        return post(client, auth, **{"Idempotency-Key": "race"})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(submit, range(4)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 200, 201], [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert job_count(app_database) == 1 and len(enqueuer.sent) == 1


@pytest.mark.parametrize("key", ["x" * 201, "has space"])
def test_bad_idempotency_key_is_422(client, auth, key):
    response = post(client, auth, **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


def test_broker_down_still_stores_the_job_for_the_reconciler(client, auth, enqueuer):
    enqueuer.fail = True
    response = post(client, auth)
    assert response.status_code == 201
    with client.app.state.database.session() as session:
        job = session.get(Job, uuid.UUID(response.json()["id"]))
        assert job.status == "queued" and job.enqueued_at is None


def test_enqueued_at_is_recorded(client, auth):
    job_id = post(client, auth).json()["id"]
    with client.app.state.database.session() as session:
        assert session.get(Job, uuid.UUID(job_id)).enqueued_at is not None


def test_oversized_body_is_413_and_nothing_stored(client, auth, enqueuer, app_database):
    body = {**SPEC, "data": {"labels": ["x" * 150] * 64}, "junk": "y" * 70_000}
    response = post(client, auth, body)
    assert response.status_code == 413
    assert response.json()["type"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit counts what streams in
        yield b'{"name": "'
        for _ in range(80):
            yield b"z" * 1024
        yield b'"}'

    streamed = client.post(
        "/jobs", content=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert job_count(app_database) == 0 and enqueuer.sent == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer srn_wrong"},
        {"X-API-Key": "srn_wrong"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
def test_missing_or_wrong_key_is_401(client, headers, app_database):
    for method, url in [("POST", "/jobs"), ("GET", "/jobs"), ("GET", f"/jobs/{uuid.uuid4()}")]:
        response = client.request(method, url, json=SPEC, headers=headers)
        assert response.status_code == 401, (method, url)
        assert response.json()["type"] == "unauthorized"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert job_count(app_database) == 0


def test_x_api_key_header_works(client, owner):
    assert client.get("/jobs", headers={"X-API-Key": owner[1]}).status_code == 200


def test_other_owners_jobs_are_404(client, auth, other_auth):
    job_id = post(client, auth).json()["id"]
    for method, suffix in [
        ("GET", ""),
        ("POST", "/cancel"),
        ("GET", "/events"),
        ("GET", "/events/stream"),
        ("GET", "/metrics"),
        ("GET", "/artifacts"),
        ("GET", f"/artifacts/{uuid.uuid4()}"),
    ]:
        response = client.request(method, f"/jobs/{job_id}{suffix}", headers=other_auth)
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["type"] == "job_not_found"
    assert client.get("/jobs", headers=other_auth).json()["count"] == 0
    assert client.get(f"/jobs/{job_id}", headers=auth).json()["status"] == "queued"


@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "..", "1%20OR%201=1"])
def test_unknown_or_malformed_ids_are_404(client, auth, job_id):
    response = client.get(f"/jobs/{job_id}", headers=auth, follow_redirects=False)
    if job_id == "..":  # the client resolves /jobs/.. to /: the root, which leads to /web/
        assert response.status_code == 307 and response.headers["location"] == "/web/"
    else:
        assert response.status_code == 404


def test_list_paginates_with_a_cursor_and_filters(client, auth, other_auth):
    ids = [post(client, auth).json()["id"] for _ in range(5)]
    post(client, other_auth)
    client.post(f"/jobs/{ids[0]}/cancel", headers=auth)
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params, headers=auth).json()
        assert page["count"] == 5
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each once
    cancelled = client.get("/jobs", params={"status": "cancelled"}, headers=auth).json()
    assert [job["id"] for job in cancelled["data"]] == [ids[0]] and cancelled["count"] == 1
    both = client.get(
        "/jobs", params=[("status", "cancelled"), ("status", "queued")], headers=auth
    ).json()
    assert both["count"] == 5


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"status": "sleeping"}, "status"),
    ],
)
def test_bad_list_parameters_are_422(client, auth, params, loc):
    response = client.get("/jobs", params=params, headers=auth)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:2] == ["query", loc]


def test_cancel_semantics(client, auth, app_database):
    queued = post(client, auth).json()["id"]
    response = client.post(f"/jobs/{queued}/cancel", headers=auth)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled" and response.json()["finished_at"]

    running = post(client, auth).json()["id"]
    with app_database.session() as session:
        JobRepository(session).claim(uuid.UUID(running), "worker-1")
        session.commit()
    response = client.post(f"/jobs/{running}/cancel", headers=auth)
    assert response.json()["status"] == "cancelling" and response.json()["cancel_requested"]
    assert client.post(f"/jobs/{running}/cancel", headers=auth).json()["status"] == "cancelling"
    with app_database.session() as session:
        JobRepository(session).transition(
            uuid.UUID(running), JobStatus.cancelled, worker_id="worker-1"
        )
        session.commit()
    for job_id in (queued, running):
        finished = client.post(f"/jobs/{job_id}/cancel", headers=auth)
        assert finished.status_code == 409
        assert finished.json()["type"] == "job_not_cancellable"


def test_job_detail_shows_progress(client, auth, app_database):
    job_id = post(client, auth).json()["id"]
    with app_database.session() as session:
        repo = JobRepository(session)
        repo.claim(uuid.UUID(job_id), "w")
        repo.set_stage(uuid.UUID(job_id), "w", "search")
        repo.update_progress(
            uuid.UUID(job_id), "w", step=25, total=100, examples_per_s=40.0, eta_s=12.0,
            job_fraction=0.6, job_eta_s=80.0, phase="evaluate",
        )  # fmt: skip
        session.commit()
    job = client.get(f"/jobs/{job_id}", headers=auth).json()
    assert job["status"] == "running" and job["stage"] == "search" and job["attempt"] == 1
    assert job["progress"] == {
        "step": 25, "total": 100, "fraction": 0.25, "phase": "evaluate", "job_fraction": 0.6
    }  # fmt: skip
    assert job["eta_s"] == 12.0 and job["examples_per_s"] == 40.0 and job["started_at"]
    assert job["job_eta_s"] == 80.0 and 0 <= job["elapsed_s"] < 60


def test_events_list(client, auth):
    job_id = post(client, auth).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=auth)
    events = client.get(f"/jobs/{job_id}/events", headers=auth).json()
    assert [(e["kind"], e["status"]) for e in events] == [
        ("created", "queued"),
        ("status", "cancelled"),
    ]
    assert events[0]["id"] < events[1]["id"]
    later = client.get(
        f"/jobs/{job_id}/events", params={"after": events[0]["id"]}, headers=auth
    ).json()
    assert [e["id"] for e in later] == [events[1]["id"]]


def parse_sse(text: str) -> list[dict]:
    messages = []
    for block in text.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
            messages.append(fields)
    return messages


def test_event_stream_replays_and_ends_after_a_terminal_status(client, auth):
    job_id = post(client, auth).json()["id"]
    client.post(f"/jobs/{job_id}/cancel", headers=auth)
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        messages = parse_sse(response.read().decode())
    kinds = [m.get("event") for m in messages]
    assert kinds == ["event", "event", "progress", "end"]
    assert messages[1]["data"]["status"] == "cancelled"
    assert int(messages[1]["id"]) == messages[1]["data"]["id"]
    assert messages[-1]["data"] == {"status": "cancelled"}

    first_id = messages[0]["id"]
    with client.stream(
        "GET", f"/jobs/{job_id}/events/stream", headers={**auth, "Last-Event-ID": first_id}
    ) as response:
        resumed = parse_sse(response.read().decode())
    assert [m.get("id") for m in resumed if m.get("event") == "event"] == [messages[1]["id"]]


def test_event_stream_follows_a_running_job(client, auth, app_database):
    job_id = uuid.UUID(post(client, auth).json()["id"])

    def worker():
        with app_database.session() as session:
            repo = JobRepository(session)
            repo.claim(job_id, "w")
            session.commit()
            repo.set_stage(job_id, "w", "search")
            session.commit()
            repo.transition(job_id, JobStatus.succeeded, worker_id="w")
            session.commit()

    thread = threading.Thread(target=worker)
    received = []
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as response:
        for chunk in response.iter_text():
            received.append(chunk)
            # The job starts only once the stream has replayed the past: what follows must
            # come from polling.
            if not thread.is_alive() and thread.ident is None and "event: progress" in chunk:
                thread.start()
    thread.join(timeout=10)
    messages = parse_sse("".join(received))
    statuses = [m["data"]["status"] for m in messages if m.get("event") == "event"]
    assert statuses == ["queued", "running", "running", "succeeded"]
    assert messages[-1] == {"event": "end", "data": {"status": "succeeded"}}
    progress = [m["data"]["status"] for m in messages if m.get("event") == "progress"]
    assert progress[0] == "queued" and progress[-1] == "succeeded"


def test_a_waiting_stream_holds_no_database_connection(client, auth, app_database):
    job_id = post(client, auth).json()["id"]
    pool = app_database.engine.pool
    samples = []
    with client.stream("GET", f"/jobs/{job_id}/events/stream", headers=auth) as response:
        for chunk in response.iter_text():
            if "event: progress" in chunk:
                break
        for _ in range(30):
            samples.append(pool.checkedout())
            time.sleep(0.01)
    # Polls take a connection for a moment; between them none is held.
    assert min(samples) == 0, samples


def test_metrics_curves_and_selected_points(client, auth, app_database):
    job_id = post(client, auth).json()["id"]
    with app_database.session() as session:
        metrics = MetricRepository(session)
        for step, accuracy in [(10, 0.61), (20, 0.66), (30, 0.64)]:
            metrics.add(
                uuid.UUID(job_id),
                stage="search",
                step=step,
                seed=1,
                sparsity=0.5,
                payload={"dev_accuracy": accuracy, "hans": accuracy - 0.1},
                selected=step == 20,
            )
        metrics.add(
            uuid.UUID(job_id),
            stage="search",
            step=10,
            seed=1,
            sparsity=0.7,
            payload={"dev_accuracy": 0.55},
        )
        session.commit()
    body = client.get(f"/jobs/{job_id}/metrics", headers=auth).json()
    curves = {(c["seed"], c["sparsity"]): c for c in body["curves"]}
    assert [p["step"] for p in curves[(1, 0.5)]["points"]] == [10, 20, 30]
    assert curves[(1, 0.5)]["selected"]["payload"]["dev_accuracy"] == 0.66
    assert curves[(1, 0.7)]["selected"] is None
    assert [(p["sparsity"], p["step"]) for p in body["selected"]] == [(0.5, 20)]


def test_bootstrap_key_from_settings_authenticates(settings, enqueuer, store):
    from fastapi.testclient import TestClient

    from api.main import create_app

    key = "boot-" + "k" * 40
    configured = settings.model_copy(update={"bootstrap_api_key": SecretStr(key)})
    with TestClient(create_app(configured, enqueuer=enqueuer, artifact_store=store)) as client:
        assert client.get("/jobs", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/jobs", headers={"X-API-Key": key + "x"}).status_code == 401


def test_local_paths_under_data_roots_are_accepted(client, auth, settings, tmp_path):
    settings.data_roots = [str(tmp_path / "data")]
    inside = {"data": {"train": {"format": "pair_json", "path": str(tmp_path / "data/t.json")}}}
    assert post(client, auth, {**SPEC, **inside}).status_code == 201
    escape = str(tmp_path / "data/../secret.json")
    outside = {"data": {"train": {"format": "pair_json", "path": escape}}}
    response = post(client, auth, {**SPEC, **outside})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "train", "path"]


def test_spec_hash_is_srcore_s_even_for_a_non_ascii_name(client, auth):
    """The API stores the hash srcore writes into masks and reports: one `spec_hash()`."""
    import hashlib

    from srcore.jobspec.spec import JobSpec, spec_hash

    body = {**SPEC, "name": "Débiaisé · 偏り"}
    job = post(client, auth, body).json()
    spec = JobSpec.model_validate(job["spec"])
    assert job["spec_hash"] == spec_hash(spec)
    # Fields added later (training.tf32, training.deterministic, pruning.structure) stay out of
    # the hash at their defaults, so jobs stored before them keep their identity.
    doc = {**job["spec"], "training": dict(job["spec"]["training"])}
    doc["pruning"] = dict(doc["pruning"])
    assert doc["training"].pop("tf32") is True
    assert doc["training"].pop("deterministic") is False
    assert doc["pruning"].pop("structure") == "unstructured"
    assert doc.pop("export") == {"onnx": "none", "measure": True}  # a later section
    # pruning.init is shown as the soft that applies; the hash keeps the null stored before
    assert doc["pruning"]["init"] == "soft"
    doc["pruning"]["init"] = None
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert job["spec_hash"] == hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    escaped = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert job["spec_hash"] != hashlib.sha256(escaped.encode()).hexdigest()
