"""`AsyncSRNetClient`: the main operations of `SRNetClient` on httpx.AsyncClient, for asyncio
code. Both send the same `srnet.client.calls` requests and read the answers alike; only the
sending differs."""

from __future__ import annotations

import asyncio
import builtins
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

import httpx

from srnet.client import calls
from srnet.client.calls import Call, Queue, connection
from srnet.client.errors import Unreachable, WaitTimeout, raise_for
from srnet.client.metrics import Metrics, metric_rows
from srnet.client.models import Artifact, Event, Job, JobPage, Study, job_state

T = TypeVar("T")


class AsyncSRNetClient:
    """`SRNetClient`'s main methods on `httpx.AsyncClient`, for asyncio code (a notebook's
    event loop, a service of one's own): the same arguments, answers and typed errors.

        async with AsyncSRNetClient(url, key) as client:
            job = await client.submit(spec)
            job = await client.wait(job.id)
            async for job in client.iterate(): ...

    Downloads stay on the synchronous client (they write files and resume with Range).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.url, headers = connection(url, key)
        self.timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport, verify=verify
        )

    def __repr__(self) -> str:  # never the key
        return f"AsyncSRNetClient({self.url!r})"

    async def __aenter__(self) -> AsyncSRNetClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        short = calls.short_id_in(path)
        if short is not None:  # a short id prefix: the key's own job or study it names
            collection, prefix, rest = short
            path = f"/{collection}/{await self._resolve(collection, prefix)}{rest}"
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url} did not answer: {exc or type(exc).__name__}") from exc
        raise_for(response)
        return response

    async def _call(self, call: Call[T]) -> T:
        return call.read(await self._request(call.method, call.path, **call.request_kwargs()))

    async def _resolve(self, collection: str, prefix: str) -> str:
        found: list[tuple[str, str | None]] = []
        cursor: str | None = None
        while True:
            page = await self._call(calls.listing(collection, cursor))
            found += calls.page_ids(collection, page)
            if page.next_cursor is None:
                return calls.pick_by_prefix(collection, prefix, found)
            cursor = page.next_cursor

    # --- jobs ----------------------------------------------------------------------------------

    async def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Queue | None = None,
    ) -> Job:
        return await self._call(calls.submit_job(spec, idempotency_key, queue))

    async def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        return await self._call(calls.list_jobs(status, limit, cursor))

    async def iterate(
        self, status: str | Iterable[str] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Job]:
        """Every job (newest first), page after page: `async for job in client.iterate()`."""
        statuses = calls.statuses_of(status)
        cursor: str | None = None
        while True:
            page = await self.list(statuses, limit=page_size, cursor=cursor)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, job_id: str) -> Job:
        return await self._call(calls.get_job(job_id))

    async def cancel(self, job_id: str) -> Job:
        return await self._call(calls.cancel_job(job_id))

    async def annotate(
        self, job_id: str, *, tags: Iterable[str] | None = None, note: str | None = None
    ) -> Job:
        return await self._call(calls.annotate_job(job_id, tags, note))

    async def events(self, job_id: str, *, after: int | None = None) -> builtins.list[Event]:
        return await self._call(calls.job_events(job_id, after))

    async def metrics(self, job_id: str) -> Metrics:
        return await self._call(calls.job_metrics(job_id))

    async def metrics_rows(
        self, job_id: str, *, selected_only: bool = False
    ) -> builtins.list[dict[str, Any]]:
        job = await self.get(job_id)
        return metric_rows(await self.metrics(job_id), selected_only=selected_only, job=job)

    async def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        return await self._call(calls.job_artifacts(job_id))

    async def runs(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        """The runs table's rows; the filters of `SRNetClient.runs`."""
        return await self._call(calls.runs(filters))

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 2.0,
        on_update: Callable[[Job], None] | None = None,
    ) -> Job:
        """Until the job has finished (polling every `poll_interval` s); its final state.
        `on_update` gets each new state once; WaitTimeout after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: Job | None = None
        while True:
            job = await self.get(job_id)
            if on_update is not None and (last is None or job_state(job) != job_state(last)):
                on_update(job)
            last = job
            if job.is_finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(job)
            await asyncio.sleep(poll_interval)

    # --- studies -------------------------------------------------------------------------------

    async def submit_study(
        self,
        study: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Queue | None = None,
    ) -> Study:
        return await self._call(calls.submit_study(study, idempotency_key, queue))

    async def get_study(self, study_id: str) -> Study:
        return await self._call(calls.get_study(study_id))

    async def study_table(self, study_id: str) -> builtins.list[dict[str, Any]]:
        return await self._call(calls.study_table(study_id))
