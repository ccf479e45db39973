"""The two clients share their request building (srnet.client.calls): for every operation both
have, the synchronous and the asynchronous client send the same request: method, path, query,
body and headers. (What the service answers is tested against a real API in test_client.py
and test_async_and_rows.py; here a recording transport only captures what goes out.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from srnet.client import AsyncSRNetClient, NotFound, SRNetClient, calls

JOB = "6f1c2d9e-0000-4000-8000-000000000001"
STUDY = "6f1c2d9e-0000-4000-8000-000000000002"
JOB_JSON = {"id": JOB, "status": "queued", "progress": {}, "queue": "gpu"}
STUDY_JSON = {"id": STUDY, "status": "queued", "counts": {}, "jobs": 0}
ANSWERS: dict[tuple[str, str], Any] = {
    ("GET", "/jobs"): {"data": [JOB_JSON], "count": 1, "next_cursor": None},
    ("GET", "/runs"): {"data": [{"job_id": JOB}]},
    ("GET", f"/jobs/{JOB}/events"): [],
    ("GET", f"/jobs/{JOB}/metrics"): {"job_id": JOB, "curves": [], "selected": []},
    ("GET", f"/jobs/{JOB}/artifacts"): {"data": []},
    ("GET", f"/studies/{STUDY}/table"): {"records": [{"row": "a"}]},
}
SPEC = {"name": "same", "debias": {"loss": "poe"}}

# (method name, args, kwargs) of every operation both clients have.
OPERATIONS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("submit", (SPEC,), {"idempotency_key": "k-1", "queue": "cpu"}),
    ("list", (["queued", "running"],), {"limit": 5, "cursor": "c"}),
    ("get", (JOB,), {}),
    ("cancel", (JOB,), {}),
    ("annotate", (JOB,), {"tags": ["a", "b"], "note": "n"}),
    ("events", (JOB,), {"after": 7}),
    ("metrics", (JOB,), {}),
    ("artifacts", (JOB,), {}),
    ("runs", (), {"loss": "poe", "tag": ["x", "y"], "sort": "-id_metric"}),
    ("submit_study", (SPEC,), {"idempotency_key": "s-1"}),
    ("get_study", (STUDY,), {}),
    ("study_table", (STUDY,), {}),
]


def answer(request: httpx.Request) -> httpx.Response:
    body = ANSWERS.get((request.method, request.url.path))
    if body is None:
        body = STUDY_JSON if "/studies" in request.url.path else JOB_JSON
    return httpx.Response(200, json=body)


def seen(request: httpx.Request) -> tuple[Any, ...]:
    body = json.loads(request.content) if request.content else None
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("content-length",)}
    return request.method, str(request.url), body, headers


@pytest.mark.parametrize(("name", "args", "kwargs"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_both_clients_send_the_same_request(name, args, kwargs):
    sent_sync: list[httpx.Request] = []
    sent_async: list[httpx.Request] = []

    def sync_handler(request: httpx.Request) -> httpx.Response:
        sent_sync.append(request)
        return answer(request)

    async def async_handler(request: httpx.Request) -> httpx.Response:
        sent_async.append(request)
        return answer(request)

    with SRNetClient(
        "http://srnet.test", "key-1", transport=httpx.MockTransport(sync_handler)
    ) as c:
        sync_answer = getattr(c, name)(*args, **kwargs)

    async def run() -> Any:
        transport = httpx.MockTransport(async_handler)
        async with AsyncSRNetClient("http://srnet.test", "key-1", transport=transport) as c:
            return await getattr(c, name)(*args, **kwargs)

    async_answer = asyncio.run(run())
    assert [seen(r) for r in sent_sync] == [seen(r) for r in sent_async]
    assert len(sent_sync) == 1
    assert sent_sync[0].headers["authorization"] == "Bearer key-1"
    assert sync_answer == async_answer


def test_calls_carry_what_the_api_expects():
    submit = calls.submit_job(SPEC, "k-1", "cpu")
    assert (submit.method, submit.path) == ("POST", "/jobs")
    assert submit.json == {**SPEC, "queue": "cpu"} and submit.headers == {"Idempotency-Key": "k-1"}
    assert calls.submit_job(SPEC, None, None).request_kwargs() == {"json": SPEC}
    listing = calls.list_jobs("failed", 10, None)
    assert listing.params == [("status", "failed"), ("limit", 10)]
    runs = calls.runs_csv({"tag": ["a", "b"], "loss": None})
    assert runs.params == [("tag", "a"), ("tag", "b"), ("format", "csv")]
    with pytest.raises(NotFound, match="not a job id"):
        calls.get_job("../etc/passwd")
