"""The request building both clients share: each API operation as a `Call` (method, path,
query, body, headers, and how to read the answer). `SRNetClient` sends a call with
httpx.Client, `AsyncSRNetClient` with httpx.AsyncClient; neither builds a request itself."""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import httpx

from srnet.client.errors import InvalidSpec, NotFound
from srnet.client.metrics import Metrics
from srnet.client.models import Artifact, Event, Job, JobPage, Study, StudyPage

DEFAULT_URL = "http://127.0.0.1:8000"
Queue = Literal["gpu", "cpu"]
T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the reader of its (successful) answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: Any = None
    json: Any = None
    headers: Mapping[str, str] | None = None

    def request_kwargs(self) -> dict[str, Any]:
        """What httpx's `request()` takes besides method and path (None: left out)."""
        given = {"params": self.params, "json": self.json, "headers": self.headers}
        return {name: value for name, value in given.items() if value is not None}


def connection(url: str | None, key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers of both clients: `url` and `key` default to $SRNET_URL and
    $SRNET_API_KEY; the key goes in `Authorization: Bearer`, never in a URL."""
    base = (url or os.environ.get("SRNET_URL") or DEFAULT_URL).rstrip("/")
    key = key if key is not None else os.environ.get("SRNET_API_KEY")
    headers = {"User-Agent": "srnet-client/0.1", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def resource_path(collection: str, kind: str, value: str) -> str:
    """`/collection/<id>`. Ids go into the path: quote nothing, refuse what is not an id-like
    token (a 404 of the kind's own code, as the service would answer)."""
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", text):
        raise NotFound(404, f"not a {kind} id: {text[:80]!r}", f"{kind}_not_found")
    return f"/{collection}/{text}"


# A job or study named by the first hex digits of its id, as tables and file names show them
# (`25420a82`): the clients resolve it against the key's own jobs or studies (issue 19 item 9).
FULL_ID = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)
_SHORT_ID_PATH = re.compile(r"^/(jobs|studies)/([0-9a-fA-F-]{4,35})(/.*)?$")
_KIND_OF = {"jobs": "job", "studies": "study"}


def short_id_in(path: str) -> tuple[str, str, str] | None:
    """(collection, prefix, rest of the path) when `path` names a job or study by a short id
    prefix (4+ hex digits); None for a full id or any other path."""
    match = _SHORT_ID_PATH.match(path)
    if match is None or FULL_ID.match(match[2]):
        return None
    return match[1], match[2], match[3] or ""


def pick_by_prefix(
    collection: str, prefix: str, candidates: Iterable[tuple[str, str | None]]
) -> str:
    """The one id of `candidates` ((id, name) pairs) starting with `prefix` (dashes ignored);
    NotFound naming the kind when none or several do."""
    kind = _KIND_OF[collection]
    wanted = prefix.replace("-", "").lower()
    matches = [(i, n) for i, n in candidates if i.replace("-", "").lower().startswith(wanted)]
    if not matches:
        raise NotFound(404, f"no {kind} of yours has an id starting with {prefix!r}",
                       f"{kind}_not_found")  # fmt: skip
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({n or 'unnamed'})" for i, n in matches[:5])
        raise NotFound(404, f"{prefix!r} matches {len(matches)} {collection}: {listed}; give more "
                       "of the id", f"{kind}_not_found")  # fmt: skip
    return matches[0][0]


def listing(collection: str, cursor: str | None) -> Call[Any]:
    """One page of the key's jobs or studies, to resolve a short id against."""
    return list_jobs(None, 100, cursor) if collection == "jobs" else list_studies(100, cursor)


def page_ids(collection: str, page: Any) -> builtins.list[tuple[str, str | None]]:
    items = page.jobs if collection == "jobs" else page.studies
    return [(str(item.id), item.name) for item in items]


def job_path(job_id: str) -> str:
    return resource_path("jobs", "job", job_id)


def study_path(study_id: str) -> str:
    return resource_path("studies", "study", study_id)


def spec_body(spec: Any) -> dict[str, Any]:
    """A job or study spec as the request body: a dict, a path to a JSON file, or a pydantic
    model."""
    if isinstance(spec, str | os.PathLike):
        path = Path(spec)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidSpec(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise InvalidSpec(f"{path} is not JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise InvalidSpec(f"{path}: a spec is a JSON object")
        return loaded
    if isinstance(spec, Mapping):
        return dict(spec)
    dump = getattr(spec, "model_dump", None)
    if callable(dump):
        return dict(dump(mode="json"))
    raise InvalidSpec(f"cannot make a spec of {type(spec).__name__}")


def runs_params(filters: Mapping[str, Any]) -> builtins.list[tuple[str, Any]]:
    """The runs table's query: None filters left out, `tag` and `sort` repeatable."""
    params: builtins.list[tuple[str, Any]] = []
    for name, value in filters.items():
        if value is None:
            continue
        if name in ("tag", "sort") and not isinstance(value, str):
            params += [(name, item) for item in value]
        else:
            params.append((name, value))
    return params


def statuses_of(status: str | Iterable[str] | None) -> builtins.list[str]:
    return [status] if isinstance(status, str) else builtins.list(status or [])


def _job(response: httpx.Response) -> Job:
    return Job.from_json(response.json())


def _study(response: httpx.Response) -> Study:
    return Study.from_json(response.json())


def _text(response: httpx.Response) -> str:
    return response.text


def _submission(
    spec: Any, idempotency_key: str | None, queue: Queue | None
) -> tuple[dict[str, Any], dict[str, str] | None]:
    body = spec_body(spec)
    if queue is not None:
        body["queue"] = queue
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
    return body, headers


# --- jobs --------------------------------------------------------------------------------------


def submit_job(spec: Any, idempotency_key: str | None, queue: Queue | None) -> Call[Job]:
    body, headers = _submission(spec, idempotency_key, queue)
    return Call("POST", "/jobs", _job, json=body, headers=headers)


def list_jobs(
    status: str | Iterable[str] | None, limit: int | None, cursor: str | None
) -> Call[JobPage]:
    params: builtins.list[tuple[str, str | int]] = [("status", s) for s in statuses_of(status)]
    if limit is not None:
        params.append(("limit", limit))
    if cursor is not None:
        params.append(("cursor", cursor))

    def read(response: httpx.Response) -> JobPage:
        data = response.json()
        return JobPage(
            jobs=[Job.from_json(j) for j in data["data"]],
            count=int(data["count"]),
            next_cursor=data.get("next_cursor"),
        )

    return Call("GET", "/jobs", read, params=params)


def get_job(job_id: str) -> Call[Job]:
    return Call("GET", job_path(job_id), _job)


def cancel_job(job_id: str) -> Call[Job]:
    return Call("POST", job_path(job_id) + "/cancel", _job)


def annotate_job(job_id: str, tags: Iterable[str] | None, note: str | None) -> Call[Job]:
    body: dict[str, Any] = {}
    if tags is not None:
        body["tags"] = builtins.list(tags)
    if note is not None:
        body["note"] = note
    return Call("PATCH", job_path(job_id), _job, json=body)


def job_events(job_id: str, after: int | None) -> Call[builtins.list[Event]]:
    params = {"after": after} if after is not None else None

    def read(response: httpx.Response) -> builtins.list[Event]:
        return [Event.from_json(e) for e in response.json()]

    return Call("GET", job_path(job_id) + "/events", read, params=params)


def job_metrics(job_id: str) -> Call[Metrics]:
    def read(response: httpx.Response) -> Metrics:
        return Metrics.from_json(response.json())

    return Call("GET", job_path(job_id) + "/metrics", read)


def job_artifacts(job_id: str) -> Call[builtins.list[Artifact]]:
    def read(response: httpx.Response) -> builtins.list[Artifact]:
        return [Artifact.from_json(a) for a in response.json()["data"]]

    return Call("GET", job_path(job_id) + "/artifacts", read)


# --- studies -----------------------------------------------------------------------------------


def submit_study(study: Any, idempotency_key: str | None, queue: Queue | None) -> Call[Study]:
    body, headers = _submission(study, idempotency_key, queue)
    return Call("POST", "/studies", _study, json=body, headers=headers)


def list_studies(limit: int | None, cursor: str | None) -> Call[StudyPage]:
    params: dict[str, str | int] = {}
    if limit is not None:
        params["limit"] = limit
    if cursor is not None:
        params["cursor"] = cursor

    def read(response: httpx.Response) -> StudyPage:
        data = response.json()
        return StudyPage(
            studies=[Study.from_json(s) for s in data["data"]],
            count=int(data["count"]),
            next_cursor=data.get("next_cursor"),
        )

    return Call("GET", "/studies", read, params=params)


def get_study(study_id: str) -> Call[Study]:
    return Call("GET", study_path(study_id), _study)


def study_table(study_id: str) -> Call[builtins.list[dict[str, Any]]]:
    def read(response: httpx.Response) -> builtins.list[dict[str, Any]]:
        return builtins.list(response.json()["records"])

    return Call("GET", study_path(study_id) + "/table", read, params={"format": "json"})


def study_table_csv(study_id: str) -> Call[str]:
    return Call("GET", study_path(study_id) + "/table", _text, params={"format": "csv"})


def study_plot(study_id: str) -> Call[bytes]:
    def read(response: httpx.Response) -> bytes:
        return response.content

    return Call("GET", study_path(study_id) + "/plot.png", read)


def cancel_study(study_id: str) -> Call[Study]:
    return Call("POST", study_path(study_id) + "/cancel", _study)


# --- the runs table ----------------------------------------------------------------------------


def runs(filters: Mapping[str, Any]) -> Call[builtins.list[dict[str, Any]]]:
    def read(response: httpx.Response) -> builtins.list[dict[str, Any]]:
        return builtins.list(response.json()["data"])

    return Call("GET", "/runs", read, params=runs_params(filters))


def runs_csv(filters: Mapping[str, Any]) -> Call[str]:
    return Call("GET", "/runs", _text, params=runs_params({**filters, "format": "csv"}))
