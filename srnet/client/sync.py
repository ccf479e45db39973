"""`SRNetClient`: the synchronous client (jobs, studies, the runs table, the live event
stream and `wait`; downloads come from `srnet.client.downloads`)."""

from __future__ import annotations

import builtins
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from srnet.client import calls
from srnet.client.calls import Call, Queue, connection, job_path
from srnet.client.downloads import Downloads
from srnet.client.errors import Unreachable, WaitTimeout, raise_for
from srnet.client.metrics import Metrics, metric_rows
from srnet.client.models import (
    Artifact,
    Event,
    Job,
    JobPage,
    StreamMessage,
    Study,
    StudyPage,
    job_state,
)
from srnet.client.sse import SSEParser

T = TypeVar("T")


class SRNetClient(Downloads):
    """One service, one API key. Thread-safe for reads (httpx.Client is); use as a context
    manager or call `close()`.

    `url` and `key` default to $SRNET_URL and $SRNET_API_KEY. The key is sent as
    `Authorization: Bearer <key>` and never appears in a URL.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.url, headers = connection(url, key)
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            verify=verify,
        )

    def __repr__(self) -> str:  # never the key
        return f"SRNetClient({self.url!r})"

    def __enter__(self) -> SRNetClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        short = calls.short_id_in(path)
        if short is not None:  # a short id prefix: the key's own job or study it names
            collection, prefix, rest = short
            path = f"/{collection}/{self._resolve(collection, prefix)}{rest}"
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url} did not answer: {exc or type(exc).__name__}") from exc
        raise_for(response)
        return response

    def _call(self, call: Call[T]) -> T:
        return call.read(self._request(call.method, call.path, **call.request_kwargs()))

    def _resolve(self, collection: str, prefix: str) -> str:
        found: builtins.list[tuple[str, str | None]] = []
        cursor: str | None = None
        while True:
            page = self._call(calls.listing(collection, cursor))
            found += calls.page_ids(collection, page)
            if page.next_cursor is None:
                return calls.pick_by_prefix(collection, prefix, found)
            cursor = page.next_cursor

    # Kept for callers of the single-module client (srnet study compare reads _study_path).
    _job_path = staticmethod(calls.job_path)
    _study_path = staticmethod(calls.study_path)
    _spec_body = staticmethod(calls.spec_body)
    _runs_params = staticmethod(calls.runs_params)

    # --- jobs ----------------------------------------------------------------------------------

    def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Queue | None = None,
    ) -> Job:
        """Submit a job: a spec dict, a path to a spec JSON file, or a pydantic JobSpec.
        Same `idempotency_key` and body again: the same job, no second one."""
        return self._call(calls.submit_job(spec, idempotency_key, queue))

    def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of this key's jobs, newest first."""
        return self._call(calls.list_jobs(status, limit, cursor))

    def iterate(
        self, status: str | Iterable[str] | None = None, *, page_size: int = 100
    ) -> Iterator[Job]:
        """Every job (newest first), page after page."""
        statuses = calls.statuses_of(status)
        cursor: str | None = None
        while True:
            page = self.list(statuses, limit=page_size, cursor=cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, job_id: str) -> Job:
        return self._call(calls.get_job(job_id))

    def cancel(self, job_id: str) -> Job:
        """Queued jobs stop at once, running ones between two steps (`cancelling` until then).
        A finished job raises Conflict."""
        return self._call(calls.cancel_job(job_id))

    def annotate(
        self, job_id: str, *, tags: Iterable[str] | None = None, note: str | None = None
    ) -> Job:
        """Set a job's tags (replacing the list; `[]` clears it) and/or its note (`""` clears
        it); a field left None is kept. A tag or note out of bounds raises ValidationFailed
        naming it (`tags.2`, `note`)."""
        return self._call(calls.annotate_job(job_id, tags, note))

    def add_tags(self, job_id: str, *tags: str) -> Job:
        """Add tags to those the job has (kept in order, no duplicates)."""
        current = builtins.list(self.get(job_id).tags)
        return self.annotate(job_id, tags=current + [t for t in tags if t not in current])

    def remove_tags(self, job_id: str, *tags: str) -> Job:
        current = self.get(job_id).tags
        return self.annotate(job_id, tags=[t for t in current if t not in tags])

    def events(self, job_id: str, *, after: int | None = None) -> builtins.list[Event]:
        return self._call(calls.job_events(job_id, after))

    def metrics(self, job_id: str) -> Metrics:
        return self._call(calls.job_metrics(job_id))

    def metrics_rows(
        self, job_id: str, *, selected_only: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """The job's evaluations as flat dicts (see `metric_rows`): `pandas.DataFrame(rows)`."""
        return metric_rows(self.metrics(job_id), selected_only=selected_only, job=self.get(job_id))

    def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        return self._call(calls.job_artifacts(job_id))

    # --- studies -------------------------------------------------------------------------------

    def submit_study(
        self,
        study: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Queue | None = None,
    ) -> Study:
        """Submit a study (a dict, a path to a study JSON file, or a pydantic StudySpec): the
        service expands it into child jobs. An invalid axis, row or grid size raises
        ValidationFailed naming it (`axes.1.path`); nothing is queued then."""
        return self._call(calls.submit_study(study, idempotency_key, queue))

    def list_studies(self, *, limit: int | None = None, cursor: str | None = None) -> StudyPage:
        """One page of this key's studies, newest first."""
        return self._call(calls.list_studies(limit, cursor))

    def iterate_studies(self, *, page_size: int = 100) -> Iterator[Study]:
        """Every study (newest first), page after page."""
        cursor: str | None = None
        while True:
            page = self.list_studies(limit=page_size, cursor=cursor)
            yield from page.studies
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_study(self, study_id: str) -> Study:
        return self._call(calls.get_study(study_id))

    def study_table(self, study_id: str) -> builtins.list[dict[str, Any]]:
        """The results table's records: {row, role, setting, sparsity, metric, mean, sd, n,
        collapsed}, one per row, sparsity (0: dense) and metric."""
        return self._call(calls.study_table(study_id))

    def study_table_csv(self, study_id: str) -> str:
        return self._call(calls.study_table_csv(study_id))

    def study_plot(self, study_id: str) -> bytes:
        """The study plot as PNG bytes (rendered by the service from the table now)."""
        return self._call(calls.study_plot(study_id))

    def cancel_study(self, study_id: str) -> Study:
        """Cancel every child job not finished. Conflict when all had finished."""
        return self._call(calls.cancel_study(study_id))

    # --- the runs table ------------------------------------------------------------------------

    def runs(
        self,
        *,
        loss: str | None = None,
        method: str | None = None,
        scenario: str | None = None,
        structure: str | None = None,
        sparsity: float | str | None = None,
        task: str | None = None,
        tag: str | Iterable[str] | None = None,
        study: str | None = None,
        stage: str | None = None,
        status: str | None = None,
        sort: str | Iterable[str] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The runs table across every job of this key: one row (a dict) per job, stage and
        sparsity, the seeds' selected points averaged: job_id, job_name, task, loss, method,
        scenario, structure, stage, sparsity, n, id_metric, ood_metric, ood {set: value},
        collapsed, tags, note, study_name… `tag` may be several (every one must be on the
        job); `sort` takes keys such as "-id_metric" or "ood.hans".
        `pandas.DataFrame(client.runs())` works."""
        filters = {
            "loss": loss,
            "method": method,
            "scenario": scenario,
            "structure": structure,
            "sparsity": sparsity,
            "task": task,
            "tag": tag,
            "study": study,
            "stage": stage,
            "status": status,
            "sort": sort,
        }
        return self._call(calls.runs(filters))

    def runs_csv(self, **filters: Any) -> str:
        """The runs table as CSV text (one `ood.<set>` column per OOD set); the filters of
        `runs()`."""
        return self._call(calls.runs_csv(filters))

    # --- live ----------------------------------------------------------------------------------

    def stream_events(
        self,
        job_id: str,
        *,
        last_event_id: int | None = None,
        reconnect: bool = True,
        max_reconnects: int = 10,
        read_timeout: float = 60.0,
    ) -> Iterator[StreamMessage]:
        """The job's server-sent events until `end` (which is yielded too). A dropped stream is
        reopened from the last event seen (`Last-Event-ID`), so no log entry is lost."""
        for message in self._stream(job_id, last_event_id, reconnect, max_reconnects, read_timeout):
            if message is not None:
                yield message

    def _stream(
        self,
        job_id: str,
        last_event_id: int | None,
        reconnect: bool,
        max_reconnects: int,
        read_timeout: float,
    ) -> Iterator[StreamMessage | None]:
        """Like stream_events, with None for each keep-alive (lets callers check a deadline)."""
        path = job_path(job_id) + "/events/stream"
        failures = 0
        retry_s = 2.0
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            parser = SSEParser()
            try:
                with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if not response.is_success:
                        response.read()
                        raise_for(response)
                    failures = 0
                    for line in response.iter_lines():
                        message = parser.feed(line)
                        if parser.retry_ms is not None:
                            retry_s = parser.retry_ms / 1000
                        if message is None:
                            if line.startswith(":"):
                                yield None
                            continue
                        name, data, event_id = message
                        parsed_id = int(event_id) if event_id and event_id.isdigit() else None
                        if parsed_id is not None:
                            last_event_id = parsed_id
                        try:
                            payload = json.loads(data)
                        except ValueError:
                            payload = {"text": data}
                        if not isinstance(payload, dict):
                            payload = {"value": payload}
                        yield StreamMessage(name, payload, parsed_id)
                        if name == "end":
                            return
            except httpx.TransportError as exc:
                failures += 1
                if not reconnect or failures > max_reconnects:
                    raise Unreachable(f"the event stream of {job_id} broke: {exc}") from exc
            else:
                # The server closed the stream without `end`: reconnect like a browser does.
                failures += 1
                if not reconnect or failures > max_reconnects:
                    raise Unreachable(f"the event stream of {job_id} closed before the end")
            time.sleep(min(retry_s * failures, 30.0))

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        stream: bool = True,
        poll_interval: float = 2.0,
        on_update: Callable[[Job], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> Job:
        """Until the job has finished; answers its final state. Follows the event stream (or
        polls every `poll_interval` s with `stream=False`, or if the stream cannot be read).
        `on_update` gets each new state, `on_event` each log entry. WaitTimeout after
        `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = self.get(job_id)
        if on_update is not None:
            on_update(last)
        if last.is_finished:
            return last
        if stream:
            try:
                read_timeout = 60.0 if timeout is None else max(1.0, min(60.0, timeout))
                for message in self._stream(job_id, None, True, 10, read_timeout):
                    if message is not None:
                        if message.event == "progress":
                            state = Job.from_json(message.data)
                            if on_update is not None and job_state(state) != job_state(last):
                                on_update(state)
                            last = state
                        elif message.event == "event" and on_event is not None:
                            on_event(Event.from_json(message.data))
                        elif message.event == "end":
                            final = self.get(job_id)
                            if on_update is not None and job_state(final) != job_state(last):
                                on_update(final)
                            return final
                    if deadline is not None and time.monotonic() > deadline:
                        raise WaitTimeout(last)
            except Unreachable:
                pass  # fall back to polling; a real outage surfaces from get() below
        while True:
            job = self.get(job_id)
            if on_update is not None and job_state(job) != job_state(last):
                on_update(job)
            last = job
            if job.is_finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(job)
            time.sleep(poll_interval)
