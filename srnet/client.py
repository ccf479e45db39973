"""A small typed Python client for the SRNet service, built on httpx.

    from srnet.client import SRNetClient

    with SRNetClient("http://127.0.0.1:8000", key) as client:
        job = client.submit("spec.json")            # or a dict, or a JobSpec
        job = client.wait(job.id, on_update=print)  # live through the event stream
        for row in client.metrics(job.id).selected:
            print(row.sparsity, row.eval_sets())
        client.download(job.id, what="checkpoint", out_dir="out", extract=True)
        study = client.submit_study("examples/studies/mnli-hans.json")
        records = client.study_table(study.id)       # mean ± sd (n) per row, sparsity, metric

It imports neither torch nor the service's own modules: a notebook with httpx is enough.
Errors are typed: `Unauthorized`, `NotFound`, `ValidationFailed` (with the fields), `Conflict`,
`ApiError` for the rest, `Unreachable` when the service does not answer.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import unicodedata
import zipfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
ArtifactChoice = Literal["checkpoint", "mask", "report", "plot", "all"]
# "report" means the whole report: metrics JSON and its plot.
_KINDS_OF: dict[str, frozenset[str]] = {
    "checkpoint": frozenset({"checkpoint"}),
    "mask": frozenset({"mask"}),
    "report": frozenset({"report", "plot"}),
    "plot": frozenset({"plot"}),
    "all": frozenset({"checkpoint", "mask", "report", "plot"}),
}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


# --- errors ------------------------------------------------------------------------------------


class ClientError(Exception):
    """Base of everything this client raises on purpose."""


class Unreachable(ClientError):
    """The service did not answer (connection refused, DNS, timeout, dropped connection)."""


class ApiError(ClientError):
    """The service answered with an error status."""

    def __init__(self, status: int, detail: str, type_: str | None = None, body: Any = None):
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.type = type_
        self.body = body


class Unauthorized(ApiError):
    """401: the API key is missing, wrong or revoked."""


class NotFound(ApiError):
    """404: no such job or artifact for this key (others' jobs are 404 too)."""


class Conflict(ApiError):
    """409: e.g. cancelling a finished job, an Idempotency-Key reused with another body."""


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path in the spec, e.g. "pruning.sparsities.1"; "" for the whole spec
    message: str
    type: str | None = None


class ValidationFailed(ApiError):
    """422: the spec (or a query parameter) is invalid; `errors` names each field."""

    def __init__(self, status: int, detail: str, errors: list[FieldError], body: Any = None):
        super().__init__(status, detail, "validation_error", body)
        self.errors = errors

    @property
    def fields(self) -> list[str]:
        return [e.field for e in self.errors]


class InvalidSpec(ClientError):
    """The spec could not be read here (no such file, not JSON, not an object)."""


class ArtifactNotAvailable(ClientError):
    """The job has no artifact of the kind asked for (yet)."""


class TargetExists(ClientError):
    """A different file or folder is already where a download or extraction would go; pass
    `force=True` (`--force`) to replace it."""


class ChecksumMismatch(ClientError):
    """A downloaded file's sha256 is not the one the service announced; it was deleted."""


class WaitTimeout(ClientError):
    """`wait` ran out of time; `job` is the last state seen."""

    def __init__(self, job: Job):
        super().__init__(f"job {job.id} is still {job.status}")
        self.job = job


# --- response types ----------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Progress:
    step: int
    total: int | None
    fraction: float | None  # of the current stage's run
    phase: str | None = None  # "train" or "evaluate"
    job_fraction: float | None = None  # the whole job, stages weighed by their work


@dataclass(frozen=True)
class Job:
    id: str
    name: str | None
    status: str
    queue: str
    stage: str | None
    progress: Progress
    examples_per_s: float | None
    eta_s: float | None
    error: str | None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    spec: dict[str, Any] | None = None  # only in single-job answers
    spec_hash: str | None = None
    job_eta_s: float | None = None  # seconds left for the whole job
    elapsed_s: float | None = None  # since it started running, until it finished
    tags: tuple[str, ...] = ()  # the lab's own (annotate)
    note: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        progress = data.get("progress") or {}
        return cls(
            id=str(data["id"]),
            name=data.get("name"),
            status=str(data["status"]),
            queue=str(data.get("queue", "")),
            stage=data.get("stage"),
            progress=Progress(
                step=int(progress.get("step") or 0),
                total=progress.get("total"),
                fraction=progress.get("fraction"),
                phase=progress.get("phase"),
                job_fraction=progress.get("job_fraction"),
            ),
            examples_per_s=data.get("examples_per_s"),
            eta_s=data.get("eta_s"),
            error=data.get("error"),
            attempt=int(data.get("attempt") or 0),
            max_attempts=int(data.get("max_attempts") or 0),
            cancel_requested=bool(data.get("cancel_requested")),
            created_at=_time(data.get("created_at")),
            updated_at=_time(data.get("updated_at")),
            started_at=_time(data.get("started_at")),
            finished_at=_time(data.get("finished_at")),
            spec=data.get("spec"),
            spec_hash=data.get("spec_hash"),
            job_eta_s=data.get("job_eta_s"),
            elapsed_s=data.get("elapsed_s"),
            tags=tuple(data.get("tags") or ()),
            note=data.get("note"),
            raw=dict(data),
        )


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    count: int  # all matching jobs, every page together
    next_cursor: str | None


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime | None
    kind: str
    status: str | None
    message: str | None
    data: dict[str, Any] | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        return cls(
            id=int(data["id"]),
            at=_time(data.get("at")),
            kind=str(data.get("kind", "")),
            status=data.get("status"),
            message=data.get("message"),
            data=data.get("data"),
        )


@dataclass(frozen=True)
class StreamMessage:
    """One server-sent event: `event` (a log entry, `.log_event`), `progress` (the job,
    `.job`) or `end` (the job has finished; the stream stops after it)."""

    event: str
    data: dict[str, Any]
    id: int | None = None

    @property
    def job(self) -> Job | None:
        return Job.from_json(self.data) if self.event == "progress" else None

    @property
    def log_event(self) -> Event | None:
        return Event.from_json(self.data) if self.event == "event" else None


@dataclass(frozen=True)
class MetricPoint:
    id: int
    stage: str
    step: int
    seed: int | None
    sparsity: float | None
    selected: bool
    payload: dict[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricPoint:
        return cls(
            id=int(data["id"]),
            stage=str(data["stage"]),
            step=int(data["step"]),
            seed=data.get("seed"),
            sparsity=data.get("sparsity"),
            selected=bool(data.get("selected")),
            payload=dict(data.get("payload") or {}),
        )

    def eval_sets(self) -> dict[str, dict[str, Any]]:
        """The evaluated sets of this point ({"dev": {...}, "hans": {...}}): every payload
        entry that is a dict with a numeric accuracy (or F1)."""
        return {
            name: value
            for name, value in self.payload.items()
            if isinstance(value, dict)
            and any(isinstance(value.get(k), int | float) for k in ("accuracy", "f1"))
        }

    @property
    def effective_sparsity(self) -> float | None:
        """The row's sparsity, else the one the payload reports; dense points are 0."""
        if self.sparsity is not None:
            return self.sparsity
        value = self.payload.get("sparsity")
        if isinstance(value, int | float):
            return float(value)
        return 0.0 if self.stage == "dense" else None


@dataclass(frozen=True)
class MetricCurve:
    stage: str
    seed: int | None
    sparsity: float | None
    points: list[MetricPoint]
    selected: MetricPoint | None


@dataclass(frozen=True)
class Metrics:
    job_id: str
    curves: list[MetricCurve]
    selected: list[MetricPoint]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Metrics:
        curves = [
            MetricCurve(
                stage=str(c["stage"]),
                seed=c.get("seed"),
                sparsity=c.get("sparsity"),
                points=[MetricPoint.from_json(p) for p in c.get("points", [])],
                selected=MetricPoint.from_json(c["selected"]) if c.get("selected") else None,
            )
            for c in data.get("curves", [])
        ]
        return cls(
            job_id=str(data.get("job_id", "")),
            curves=curves,
            selected=[MetricPoint.from_json(p) for p in data.get("selected", [])],
        )


def flatten_payload(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"hans": {"accuracy": .6, "heuristics": {"lexical_overlap": {...}}}} →
    {"hans.accuracy": .6, "hans.heuristics.lexical_overlap.entailed": …}: numbers, strings and
    flags as they are, nested dicts joined by ".", lists left out."""
    flat: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_payload(value, f"{name}."))
        elif isinstance(value, str | int | float | bool) or value is None:
            flat[name] = value
    return flat


def metric_rows(
    metrics: Metrics, *, selected_only: bool = False, job: Job | None = None
) -> builtins.list[dict[str, Any]]:
    """One flat dict per evaluation, for `pandas.DataFrame(rows)` (no pandas needed here):
    job_id, stage, seed, sparsity (the effective one; dense 0), step, selected, then every
    metric of the payload flattened (`dev.accuracy`, `hans.non_entailed`, `train_loss`, …).
    With `job`, its name, loss and method ride along on every row."""
    extra: dict[str, Any] = {}
    if job is not None:
        spec = job.spec or {}
        extra = {
            "job_name": job.name,
            "task": spec.get("task"),
            "loss": (spec.get("debias") or {}).get("loss"),
            "method": (spec.get("pruning") or {}).get("method"),
        }
    points = metrics.selected if selected_only else [p for c in metrics.curves for p in c.points]
    return [
        {
            "job_id": metrics.job_id,
            **extra,
            "stage": point.stage,
            "seed": point.seed,
            "sparsity": point.effective_sparsity,
            "step": point.step,
            "selected": point.selected,
            **flatten_payload(point.payload),
        }
        for point in points
    ]


@dataclass(frozen=True)
class Artifact:
    id: str
    name: str
    kind: str
    content_type: str
    size: int
    sha256: str
    seed: int | None
    sparsity: float | None
    created_at: datetime | None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            kind=str(data["kind"]),
            content_type=str(data.get("content_type", "application/octet-stream")),
            size=int(data["size"]),
            sha256=str(data["sha256"]),
            seed=data.get("seed"),
            sparsity=data.get("sparsity"),
            created_at=_time(data.get("created_at")),
        )


@dataclass(frozen=True)
class Download:
    artifact: Artifact
    path: Path
    resumed_from: int = 0  # bytes already on disk when a Range request continued the file
    skipped: bool = False  # the file was already there with the right sha256
    extracted_to: Path | None = None


# --- server-sent events ------------------------------------------------------------------------


@dataclass(frozen=True)
class StudyChild:
    """One job of a study: its key and row label, its role and status."""

    job_id: str
    key: str
    label: str
    role: str  # "search" or "reference" (a dense model of one loss)
    setting: dict[str, Any]
    status: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StudyChild:
        return cls(
            job_id=str(data["job_id"]),
            key=str(data["key"]),
            label=str(data["label"]),
            role=str(data["role"]),
            setting=dict(data.get("setting") or {}),
            status=str(data["status"]),
        )


@dataclass(frozen=True)
class Study:
    """A study: status from its children (queued, running, succeeded, failed, cancelled),
    counts per job status; single-study answers add the spec, children and table records."""

    id: str
    name: str | None
    status: str
    counts: dict[str, int]
    jobs: int
    queue: str
    created_at: datetime | None
    spec: dict[str, Any] | None = None
    children: list[StudyChild] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Study:
        return cls(
            id=str(data["id"]),
            name=data.get("name"),
            status=str(data["status"]),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            jobs=int(data.get("jobs") or 0),
            queue=str(data.get("queue", "")),
            created_at=_time(data.get("created_at")),
            spec=data.get("spec"),
            children=[StudyChild.from_json(c) for c in data.get("children") or []],
            table=[dict(r) for r in data.get("table") or []],
            raw=dict(data),
        )


@dataclass(frozen=True)
class StudyPage:
    studies: list[Study]
    count: int
    next_cursor: str | None


class SSEParser:
    """Turns the lines of a text/event-stream into messages (the WHATWG rules we need: `event`,
    `data` (joined by newlines), `id`, `retry`, comments)."""

    def __init__(self) -> None:
        self.retry_ms: int | None = None
        self.last_id: str | None = None
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> tuple[str, str, str | None] | None:
        """One line without its end; answers (event, data, id) when a message is complete."""
        if line == "":
            if not self._data:
                self._event, self._id = "", None
                return None
            message = (self._event or "message", "\n".join(self._data), self._id)
            if self._id is not None:
                self.last_id = self._id
            self._event, self._data, self._id = "", [], None
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


# --- the client --------------------------------------------------------------------------------


def _safe_filename(name: str) -> str:
    """A file name with no directory part and only [A-Za-z0-9._-]: artifact names come from the
    service and must never place a file outside `out_dir`."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    return (_UNSAFE_NAME.sub("_", text).strip("._") or "artifact")[:200]


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _field_errors(body: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list):
        return errors
    for item in detail:
        if not isinstance(item, dict):
            continue
        loc = [str(part) for part in item.get("loc", [])]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:] if loc[0] == "body" else loc
        errors.append(
            FieldError(field=".".join(loc), message=str(item.get("msg", "")), type=item.get("type"))
        )
    return errors


def _raise_for(response: httpx.Response) -> None:
    if response.is_success or response.status_code == 304:
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status == 422:
        errors = _field_errors(body)
        summary = "; ".join(f"{e.field or '(spec)'}: {e.message}" for e in errors)
        raise ValidationFailed(status, summary or "invalid request", errors, body)
    detail = body.get("detail") if isinstance(body, dict) else None
    type_ = body.get("type") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else (response.reason_phrase or "error")
    error_class = {401: Unauthorized, 404: NotFound, 409: Conflict}.get(status, ApiError)
    raise error_class(status, text, type_, body)


def connection(url: str | None, key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL and headers of both clients: `url` and `key` default to $SRNET_URL and
    $SRNET_API_KEY; the key goes in `Authorization: Bearer`, never in a URL."""
    base = (url or os.environ.get("SRNET_URL") or DEFAULT_URL).rstrip("/")
    key = key if key is not None else os.environ.get("SRNET_API_KEY")
    headers = {"User-Agent": "srnet-client/0.1", "Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _resource_path(collection: str, kind: str, value: str) -> str:
    """`/collection/<id>`. Ids go into the path: quote nothing, refuse what is not an id-like
    token (a 404 of the kind's own code, as the service would answer)."""
    text = str(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", text):
        raise NotFound(404, f"not a {kind} id: {text[:80]!r}", f"{kind}_not_found")
    return f"/{collection}/{text}"


class SRNetClient:
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
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url} did not answer: {exc or type(exc).__name__}") from exc
        _raise_for(response)
        return response

    @staticmethod
    def _job_path(job_id: str) -> str:
        return _resource_path("jobs", "job", job_id)

    # --- jobs ----------------------------------------------------------------------------------

    def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Literal["gpu", "cpu"] | None = None,
    ) -> Job:
        """Submit a job: a spec dict, a path to a spec JSON file, or a pydantic JobSpec.
        Same `idempotency_key` and body again: the same job, no second one."""
        body = self._spec_body(spec)
        if queue is not None:
            body["queue"] = queue
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Job.from_json(self._request("POST", "/jobs", json=body, headers=headers).json())

    @staticmethod
    def _spec_body(spec: Any) -> dict[str, Any]:
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

    def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        """One page of this key's jobs, newest first."""
        params: list[tuple[str, str | int]] = []
        statuses = [status] if isinstance(status, str) else list(status or [])
        params += [("status", s) for s in statuses]
        if limit is not None:
            params.append(("limit", limit))
        if cursor is not None:
            params.append(("cursor", cursor))
        data = self._request("GET", "/jobs", params=params).json()
        return JobPage(
            jobs=[Job.from_json(j) for j in data["data"]],
            count=int(data["count"]),
            next_cursor=data.get("next_cursor"),
        )

    def iterate(
        self, status: str | Iterable[str] | None = None, *, page_size: int = 100
    ) -> Iterator[Job]:
        """Every job (newest first), page after page."""
        statuses = [status] if isinstance(status, str) else list(status or [])
        cursor: str | None = None
        while True:
            page = self.list(statuses, limit=page_size, cursor=cursor)
            yield from page.jobs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", self._job_path(job_id)).json())

    def cancel(self, job_id: str) -> Job:
        """Queued jobs stop at once, running ones between two steps (`cancelling` until then).
        A finished job raises Conflict."""
        path = self._job_path(job_id) + "/cancel"
        return Job.from_json(self._request("POST", path).json())

    def annotate(
        self, job_id: str, *, tags: Iterable[str] | None = None, note: str | None = None
    ) -> Job:
        """Set a job's tags (replacing the list; `[]` clears it) and/or its note (`""` clears
        it); a field left None is kept. A tag or note out of bounds raises ValidationFailed
        naming it (`tags.2`, `note`)."""
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = builtins.list(tags)
        if note is not None:
            body["note"] = note
        return Job.from_json(self._request("PATCH", self._job_path(job_id), json=body).json())

    def add_tags(self, job_id: str, *tags: str) -> Job:
        """Add tags to those the job has (kept in order, no duplicates)."""
        current = builtins.list(self.get(job_id).tags)
        return self.annotate(job_id, tags=current + [t for t in tags if t not in current])

    def remove_tags(self, job_id: str, *tags: str) -> Job:
        current = self.get(job_id).tags
        return self.annotate(job_id, tags=[t for t in current if t not in tags])

    def events(self, job_id: str, *, after: int | None = None) -> builtins.list[Event]:
        params = {"after": after} if after is not None else None
        data = self._request("GET", self._job_path(job_id) + "/events", params=params).json()
        return [Event.from_json(e) for e in data]

    def metrics(self, job_id: str) -> Metrics:
        return Metrics.from_json(self._request("GET", self._job_path(job_id) + "/metrics").json())

    def metrics_rows(
        self, job_id: str, *, selected_only: bool = False
    ) -> builtins.list[dict[str, Any]]:
        """The job's evaluations as flat dicts (see `metric_rows`): `pandas.DataFrame(rows)`."""
        return metric_rows(self.metrics(job_id), selected_only=selected_only, job=self.get(job_id))

    def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        data = self._request("GET", self._job_path(job_id) + "/artifacts").json()
        return [Artifact.from_json(a) for a in data["data"]]

    # --- studies -------------------------------------------------------------------------------

    @staticmethod
    def _study_path(study_id: str) -> str:
        return _resource_path("studies", "study", study_id)

    def submit_study(
        self,
        study: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Literal["gpu", "cpu"] | None = None,
    ) -> Study:
        """Submit a study (a dict, a path to a study JSON file, or a pydantic StudySpec): the
        service expands it into child jobs. An invalid axis, row or grid size raises
        ValidationFailed naming it (`axes.1.path`); nothing is queued then."""
        body = self._spec_body(study)
        if queue is not None:
            body["queue"] = queue
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Study.from_json(self._request("POST", "/studies", json=body, headers=headers).json())

    def list_studies(self, *, limit: int | None = None, cursor: str | None = None) -> StudyPage:
        """One page of this key's studies, newest first."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        data = self._request("GET", "/studies", params=params).json()
        return StudyPage(
            studies=[Study.from_json(s) for s in data["data"]],
            count=int(data["count"]),
            next_cursor=data.get("next_cursor"),
        )

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
        return Study.from_json(self._request("GET", self._study_path(study_id)).json())

    def study_table(self, study_id: str) -> builtins.list[dict[str, Any]]:
        """The results table's records: {row, role, setting, sparsity, metric, mean, sd, n,
        collapsed}, one per row, sparsity (0: dense) and metric."""
        path = self._study_path(study_id) + "/table"
        return list(self._request("GET", path, params={"format": "json"}).json()["records"])

    def study_table_csv(self, study_id: str) -> str:
        path = self._study_path(study_id) + "/table"
        return self._request("GET", path, params={"format": "csv"}).text

    def study_plot(self, study_id: str) -> bytes:
        """The study plot as PNG bytes (rendered by the service from the table now)."""
        return self._request("GET", self._study_path(study_id) + "/plot.png").content

    def cancel_study(self, study_id: str) -> Study:
        """Cancel every child job not finished. Conflict when all had finished."""
        return Study.from_json(self._request("POST", self._study_path(study_id) + "/cancel").json())

    # --- the runs table ------------------------------------------------------------------------

    @staticmethod
    def _runs_params(filters: Mapping[str, Any]) -> builtins.list[tuple[str, Any]]:
        params: builtins.list[tuple[str, Any]] = []
        for name, value in filters.items():
            if value is None:
                continue
            if name in ("tag", "sort") and not isinstance(value, str):
                params += [(name, item) for item in value]
            else:
                params.append((name, value))
        return params

    def runs(
        self,
        *,
        loss: str | None = None,
        method: str | None = None,
        scenario: str | None = None,
        sparsity: float | None = None,
        task: str | None = None,
        tag: str | Iterable[str] | None = None,
        study: str | None = None,
        stage: str | None = None,
        status: str | None = None,
        sort: str | Iterable[str] | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The runs table across every job of this key: one row (a dict) per job, stage and
        sparsity, the seeds' selected points averaged: job_id, job_name, task, loss, method,
        scenario, stage, sparsity, n, id_metric, ood_metric, ood {set: value}, collapsed, tags,
        note, study_name… `tag` may be several (every one must be on the job); `sort` takes
        keys such as "-id_metric" or "ood.hans". `pandas.DataFrame(client.runs())` works."""
        filters = dict(loss=loss, method=method, scenario=scenario, sparsity=sparsity, task=task,
                       tag=tag, study=study, stage=stage, status=status, sort=sort)  # fmt: skip
        response = self._request("GET", "/runs", params=self._runs_params(filters))
        return builtins.list(response.json()["data"])

    def runs_csv(self, **filters: Any) -> str:
        """The runs table as CSV text (one `ood.<set>` column per OOD set); the filters of
        `runs()`."""
        params = self._runs_params({**filters, "format": "csv"})
        return self._request("GET", "/runs", params=params).text

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
        path = self._job_path(job_id) + "/events/stream"
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
                        _raise_for(response)
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
                            if on_update is not None and _state(state) != _state(last):
                                on_update(state)
                            last = state
                        elif message.event == "event" and on_event is not None:
                            on_event(Event.from_json(message.data))
                        elif message.event == "end":
                            final = self.get(job_id)
                            if on_update is not None and _state(final) != _state(last):
                                on_update(final)
                            return final
                    if deadline is not None and time.monotonic() > deadline:
                        raise WaitTimeout(last)
            except Unreachable:
                pass  # fall back to polling; a real outage surfaces from get() below
        while True:
            job = self.get(job_id)
            if on_update is not None and _state(job) != _state(last):
                on_update(job)
            last = job
            if job.is_finished:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(job)
            time.sleep(poll_interval)

    # --- downloads -----------------------------------------------------------------------------

    def download(
        self,
        job_id: str,
        what: ArtifactChoice = "checkpoint",
        out_dir: str | os.PathLike[str] = ".",
        *,
        seed: int | None = None,
        sparsity: float | None = None,
        verify: bool = True,
        extract: bool = False,
        force: bool = False,
        retries: int = 5,
    ) -> builtins.list[Download]:
        """Download the job's artifacts of one kind (optionally one seed / sparsity) into
        `out_dir`. Each file is checked against its sha256; a broken transfer continues where
        it stopped (`Range`), also across calls (`<name>.part` stays on disk). With
        `extract`, checkpoint archives are unpacked into `out_dir/<name without suffix>/`
        (the model directory itself, one level deep). A different file or folder already
        there raises TargetExists unless `force`; an identical one is skipped."""
        kinds = _KINDS_OF.get(what)
        if kinds is None:
            raise ValueError(f"what must be one of {sorted(_KINDS_OF)}")
        sparsity = sparsity_fraction(sparsity)
        available = self.artifacts(job_id)
        chosen = [
            a
            for a in available
            if a.kind in kinds
            and (seed is None or a.seed == seed)
            and (sparsity is None or (a.sparsity is not None and abs(a.sparsity - sparsity) < 1e-9))
        ]
        if not chosen:
            asked = ", ".join(
                part
                for part in (
                    f"seed {seed}" if seed is not None else "",
                    f"sparsity {sparsity:g}" if sparsity is not None else "",
                )
                if part
            )
            raise ArtifactNotAvailable(
                f"job {job_id} has no {what} artifact"
                + (f" with {asked}" if asked else "")
                + "; it has: "
                + (describe_artifacts(available) or "no artifacts (yet)")
            )
        return [
            self.download_artifact(
                job_id,
                artifact,
                out_dir,
                verify=verify,
                extract=extract,
                force=force,
                retries=retries,
            )
            for artifact in chosen
        ]

    def download_artifact(
        self,
        job_id: str,
        artifact: Artifact,
        out_dir: str | os.PathLike[str] = ".",
        *,
        verify: bool = True,
        extract: bool = False,
        force: bool = False,
        retries: int = 5,
    ) -> Download:
        folder = Path(out_dir)
        final = folder / _safe_filename(artifact.name)
        part = final.with_name(final.name + ".part")
        already_here = final.is_file() and final.stat().st_size == artifact.size
        if already_here and (not verify or _sha256_file(final) == artifact.sha256):
            done = Download(artifact, final, skipped=True)
            return self._maybe_extract(done, force) if extract else done
        if (final.exists() or final.is_symlink()) and not force:
            raise TargetExists(
                f"{final} exists and is not {artifact.name} of this job; "
                "move it away or pass --force (force=True) to replace it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        url = f"{self._job_path(job_id)}/artifacts/{artifact.id}"
        etag = f'"{artifact.sha256}"'
        resumed_from = 0
        failures = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            if offset > artifact.size:
                part.unlink()
                offset = 0
            if offset == artifact.size:
                break
            headers = {"Accept": "*/*"}
            if offset:
                # If-Range: only continue if the bytes are still the same artifact.
                headers.update({"Range": f"bytes={offset}-", "If-Range": etag})
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 416:
                        part.unlink(missing_ok=True)
                        failures += 1
                        if failures > retries:
                            raise ApiError(416, "the service refused every byte range")
                        continue
                    if not response.is_success:
                        response.read()
                        _raise_for(response)
                    if response.status_code == 206:
                        start = _content_range_start(response.headers.get("Content-Range"))
                        if start != offset:
                            raise ApiError(206, f"asked for bytes from {offset}, got {start}")
                        resumed_from = max(resumed_from, offset)
                        mode = "ab"
                    else:
                        mode = "wb"  # a whole body: start over
                    # Chunks as they arrive (no re-chunking): what came before a dropped
                    # connection is on disk, and the next request continues after it.
                    with part.open(mode) as handle:
                        for chunk in response.iter_bytes():
                            handle.write(chunk)
                if part.stat().st_size >= artifact.size:
                    break
                failures += 1  # the body ended early without an error
            except httpx.TransportError as exc:
                failures += 1
                if failures > retries:
                    raise Unreachable(
                        f"download of {artifact.name} broke {failures} times; run again to "
                        f"resume from {part.stat().st_size if part.exists() else 0} bytes"
                    ) from exc
                time.sleep(min(0.2 * 2**failures, 10.0))
                continue
            if failures > retries:
                raise Unreachable(f"download of {artifact.name} keeps ending early")
        if verify:
            actual = _sha256_file(part)
            if actual != artifact.sha256 or part.stat().st_size != artifact.size:
                part.unlink()
                raise ChecksumMismatch(
                    f"{artifact.name}: sha256 {actual} is not the announced {artifact.sha256}; "
                    "the file was deleted"
                )
        if force and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        part.replace(final)
        done = Download(artifact, final, resumed_from=resumed_from)
        return self._maybe_extract(done, force) if extract else done

    @staticmethod
    def _maybe_extract(done: Download, force: bool = False) -> Download:
        """Unpack an archive into `<folder>/<name without suffix>/`. An archive that holds one
        folder (as the service's checkpoints do) becomes that folder, so the model directory
        is one level deep. A target with the archive's content already is kept as it is."""
        path = done.path
        name = path.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
            if name.endswith(suffix):
                target = path.with_name(name[: -len(suffix)])
                break
        else:
            return done
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=path.parent))
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    root = staging.resolve()
                    for member in archive.namelist():
                        dest = (staging / member).resolve()
                        if not dest.is_relative_to(root):
                            raise ClientError(f"{name}: member {member!r} leaves the folder")
                    archive.extractall(staging)
            else:
                with tarfile.open(path) as archive:
                    # The "data" filter refuses absolute paths, links out of the folder, devices.
                    archive.extractall(staging, filter="data")
            entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
            unpacked = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
            if target.exists() or target.is_symlink():
                if target.is_dir() and _same_tree(unpacked, target):
                    return Download(done.artifact, path, done.resumed_from, done.skipped, target)
                if not force:
                    raise TargetExists(
                        f"{target} exists with other content; move it away or pass --force "
                        "(force=True) to replace it"
                    )
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            unpacked.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Download(done.artifact, path, done.resumed_from, done.skipped, target)


def _same_tree(left: Path, right: Path) -> bool:
    """The same relative file names with the same bytes (sizes first, then content)."""

    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}

    ours, theirs = files(left), files(right)
    if ours.keys() != theirs.keys():
        return False
    if any(ours[k].stat().st_size != theirs[k].stat().st_size for k in ours):
        return False
    return all(_sha256_file(ours[k]) == _sha256_file(theirs[k]) for k in ours)


def _state(job: Job) -> tuple[Any, ...]:
    """What `on_update` reports a change of (not the spec a single-job answer adds, nor the
    row's write time): one call per state, however it arrived."""
    return (job.status, job.stage, job.progress, job.examples_per_s, job.eta_s, job.error,
            job.attempt, job.cancel_requested, job.finished_at)  # fmt: skip


def sparsity_fraction(value: float | None) -> float | None:
    """A sparsity as a fraction: 0.7 stays, 70 (a percentage, as the pages show it) is 0.7."""
    if value is None:
        return None
    if 1 < value <= 100:
        return value / 100
    return value


def describe_artifacts(artifacts: Iterable[Artifact]) -> str:
    """What a job has, for messages: "checkpoint (seed 1, sparsity 0.5; seed 1, sparsity 0.7),
    mask (…), report"."""
    by_kind: dict[str, builtins.list[str]] = {}
    for a in artifacts:
        where = ", ".join(
            part
            for part in (
                f"seed {a.seed}" if a.seed is not None else "",
                f"sparsity {a.sparsity:g}" if a.sparsity is not None else "",
            )
            if part
        )
        by_kind.setdefault(a.kind, [])
        if where and where not in by_kind[a.kind]:
            by_kind[a.kind].append(where)
    order = ["checkpoint", "mask", "report", "plot"]
    kinds = sorted(by_kind, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ", ".join(
        f"{kind} ({'; '.join(by_kind[kind])})" if by_kind[kind] else kind for kind in kinds
    )


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", header or "")
    return int(match.group(1)) if match else None


# --- the async twin ----------------------------------------------------------------------------


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
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url} did not answer: {exc or type(exc).__name__}") from exc
        _raise_for(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return (await self._request(method, path, **kwargs)).json()

    # --- jobs ----------------------------------------------------------------------------------

    async def submit(
        self,
        spec: Mapping[str, Any] | str | os.PathLike[str] | Any,
        *,
        idempotency_key: str | None = None,
        queue: Literal["gpu", "cpu"] | None = None,
    ) -> Job:
        body = SRNetClient._spec_body(spec)
        if queue is not None:
            body["queue"] = queue
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Job.from_json(await self._json("POST", "/jobs", json=body, headers=headers))

    async def list(
        self,
        status: str | Iterable[str] | None = None,
        *,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> JobPage:
        params: builtins.list[tuple[str, str | int]] = []
        statuses = [status] if isinstance(status, str) else builtins.list(status or [])
        params += [("status", s) for s in statuses]
        if limit is not None:
            params.append(("limit", limit))
        if cursor is not None:
            params.append(("cursor", cursor))
        data = await self._json("GET", "/jobs", params=params)
        return JobPage(
            jobs=[Job.from_json(j) for j in data["data"]],
            count=int(data["count"]),
            next_cursor=data.get("next_cursor"),
        )

    async def iterate(
        self, status: str | Iterable[str] | None = None, *, page_size: int = 100
    ) -> AsyncIterator[Job]:
        """Every job (newest first), page after page: `async for job in client.iterate()`."""
        statuses = [status] if isinstance(status, str) else builtins.list(status or [])
        cursor: str | None = None
        while True:
            page = await self.list(statuses, limit=page_size, cursor=cursor)
            for job in page.jobs:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def get(self, job_id: str) -> Job:
        return Job.from_json(await self._json("GET", SRNetClient._job_path(job_id)))

    async def cancel(self, job_id: str) -> Job:
        return Job.from_json(await self._json("POST", SRNetClient._job_path(job_id) + "/cancel"))

    async def annotate(
        self, job_id: str, *, tags: Iterable[str] | None = None, note: str | None = None
    ) -> Job:
        body: dict[str, Any] = {}
        if tags is not None:
            body["tags"] = builtins.list(tags)
        if note is not None:
            body["note"] = note
        path = SRNetClient._job_path(job_id)
        return Job.from_json(await self._json("PATCH", path, json=body))

    async def events(self, job_id: str, *, after: int | None = None) -> builtins.list[Event]:
        params = {"after": after} if after is not None else None
        path = SRNetClient._job_path(job_id) + "/events"
        return [Event.from_json(e) for e in await self._json("GET", path, params=params)]

    async def metrics(self, job_id: str) -> Metrics:
        path = SRNetClient._job_path(job_id) + "/metrics"
        return Metrics.from_json(await self._json("GET", path))

    async def metrics_rows(
        self, job_id: str, *, selected_only: bool = False
    ) -> builtins.list[dict[str, Any]]:
        job = await self.get(job_id)
        return metric_rows(await self.metrics(job_id), selected_only=selected_only, job=job)

    async def artifacts(self, job_id: str) -> builtins.list[Artifact]:
        data = await self._json("GET", SRNetClient._job_path(job_id) + "/artifacts")
        return [Artifact.from_json(a) for a in data["data"]]

    async def runs(self, **filters: Any) -> builtins.list[dict[str, Any]]:
        """The runs table's rows; the filters of `SRNetClient.runs`."""
        params = SRNetClient._runs_params(filters)
        return builtins.list((await self._json("GET", "/runs", params=params))["data"])

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
        import asyncio

        deadline = None if timeout is None else time.monotonic() + timeout
        last: Job | None = None
        while True:
            job = await self.get(job_id)
            if on_update is not None and (last is None or _state(job) != _state(last)):
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
        queue: Literal["gpu", "cpu"] | None = None,
    ) -> Study:
        body = SRNetClient._spec_body(study)
        if queue is not None:
            body["queue"] = queue
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return Study.from_json(await self._json("POST", "/studies", json=body, headers=headers))

    async def get_study(self, study_id: str) -> Study:
        return Study.from_json(await self._json("GET", SRNetClient._study_path(study_id)))

    async def study_table(self, study_id: str) -> builtins.list[dict[str, Any]]:
        path = SRNetClient._study_path(study_id) + "/table"
        return builtins.list((await self._json("GET", path, params={"format": "json"}))["records"])
