"""The client's page iterators, its async twin (httpx.AsyncClient) and metrics as flat rows for
pandas, against a real running API (a stand-in worker records the metrics)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from srnet.client import (
    AsyncSRNetClient,
    Job,
    NotFound,
    SRNetClient,
    Unauthorized,
    ValidationFailed,
    flatten_payload,
)
from tests.client.live_service import LiveService

SPEC = {"name": "async-poe", "debias": {"loss": "poe"}, "pruning": {"sparsities": [0.5, 0.7]}}


def test_iterate_walks_every_page(client: SRNetClient):
    ids = [client.submit({**SPEC, "name": f"page-{i}"}).id for i in range(5)]
    assert [job.id for job in client.iterate(page_size=2)] == ids[::-1]
    assert client.list(limit=2).next_cursor is not None
    study = {"name": "it", "base": {"pruning": {"sparsities": [0.5]}},
             "axes": [{"path": "debias.loss", "values": ["poe"]}]}  # fmt: skip
    made = [client.submit_study({**study, "name": f"s{i}"}).id for i in range(3)]
    assert [s.id for s in client.iterate_studies(page_size=2)] == made[::-1]


def test_metrics_as_flat_rows(client: SRNetClient, service: LiveService):
    job = client.submit(SPEC)
    service.worker(job.id).run_search()
    rows = client.metrics_rows(job.id)
    assert len(rows) == 2 + 2 * 4  # two dense evaluations, four per sparsity
    first = rows[0]
    assert (first["job_id"], first["stage"], first["sparsity"], first["step"]) == (
        job.id, "dense", 0.0, 10)  # fmt: skip
    assert first["job_name"] == "async-poe" and first["loss"] == "poe"
    assert first["dev.accuracy"] == pytest.approx(0.81)
    assert first["hans.heuristics.lexical_overlap.non_entailed"] == pytest.approx(0.2)
    assert first["train_loss"] == pytest.approx(0.42)
    # Flat: nothing nested is left, so pandas.DataFrame(rows) has one column per number.
    assert all(not isinstance(v, dict | list) for row in rows for v in row.values())
    selected = client.metrics_rows(job.id, selected_only=True)
    assert [(r["stage"], r["sparsity"], r["step"]) for r in selected] == [
        ("dense", 0.0, 20), ("search", 0.5, 30), ("search", 0.7, 30)]  # fmt: skip
    assert all(r["selected"] for r in selected)
    assert flatten_payload({"a": {"b": 1, "c": [1, 2]}, "d": True}) == {"a.b": 1, "d": True}


def test_the_async_client_does_what_the_sync_one_does(service: LiveService, key: str):
    async def scenario() -> dict:
        async with AsyncSRNetClient(service.url, key, timeout=10) as client:
            job = await client.submit(SPEC, idempotency_key="async-1")
            again = await client.submit(SPEC, idempotency_key="async-1")
            listed = [j.id async for j in client.iterate(page_size=1)]

            # A worker in another thread finishes the job while we wait for it.
            def finish_later() -> None:
                time.sleep(0.3)
                service.worker(job.id).run_search()

            worker = threading.Thread(target=finish_later)
            worker.start()
            states: list[Job] = []
            done = await client.wait(job.id, poll_interval=0.1, timeout=30,
                                     on_update=states.append)  # fmt: skip
            worker.join()
            tagged = await client.annotate(job.id, tags=["async"], note="from asyncio")
            errors = {}
            for name, call in (("missing", client.get("0" * 8 + "-0000-0000-0000-" + "0" * 12)),
                               ("bad-tag", client.annotate(job.id, tags=["a b"]))):  # fmt: skip
                try:
                    await call
                except Exception as exc:  # the test records which one
                    errors[name] = exc
            async with AsyncSRNetClient(service.url, "srn_wrong") as stranger:
                try:
                    await stranger.list()
                except Unauthorized as exc:
                    errors["key"] = exc
            return {
                "job": job, "again": again, "listed": listed, "done": done, "states": states,
                "tagged": tagged, "errors": errors,
                "metrics": await client.metrics(job.id),
                "rows": await client.metrics_rows(job.id, selected_only=True),
                "artifacts": await client.artifacts(job.id),
                "events": await client.events(job.id),
                "runs": await client.runs(tag="async", stage="search"),
            }  # fmt: skip

    got = asyncio.run(scenario())
    job = got["job"]
    assert got["again"].id == job.id and got["listed"] == [job.id]
    assert got["done"].status == "succeeded"
    assert got["states"][0].status in ("queued", "running") and got["states"][-1].is_finished
    assert len({(s.status, s.stage, s.progress) for s in got["states"]}) == len(got["states"])
    assert got["tagged"].tags == ("async",) and got["tagged"].note == "from asyncio"
    assert isinstance(got["errors"]["missing"], NotFound)
    assert isinstance(got["errors"]["bad-tag"], ValidationFailed)
    assert got["errors"]["bad-tag"].fields == ["tags.0"]
    assert isinstance(got["errors"]["key"], Unauthorized)
    assert len(got["metrics"].selected) == 3 and len(got["rows"]) == 3
    assert {a.kind for a in got["artifacts"]} == {"mask", "checkpoint", "report"}
    assert got["events"][0].kind == "created" and got["events"][-1].status == "succeeded"
    assert [r["sparsity"] for r in got["runs"]] == [0.5, 0.7]
