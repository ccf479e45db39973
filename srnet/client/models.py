"""The service's answers as frozen dataclasses: jobs, events, artifacts, studies."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


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


def job_state(job: Job) -> tuple[Any, ...]:
    """What `on_update` reports a change of (not the spec a single-job answer adds, nor the
    row's write time): one call per state, however it arrived."""
    return (job.status, job.stage, job.progress, job.examples_per_s, job.eta_s, job.error,
            job.attempt, job.cancel_requested, job.finished_at)  # fmt: skip


def sparsity_fraction(value: float | str | None) -> float | None:
    """A sparsity as a fraction: 0.7 and "0.7" stay, 70, "70" and "70%" (a percentage, as the
    pages show it) are 0.7. Anything else is a ValueError that names the argument and says
    what to write (issue 19 item 10: "50%" raised a raw TypeError)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"sparsity: give a fraction such as 0.5 (or 50, '50%'), not {value!r}")
    number: float
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text.removesuffix("%"))
        except ValueError:
            raise ValueError(
                f"sparsity: give a fraction such as 0.5 (or 50, '50%'), not {value!r}"
            ) from None
        if text.endswith("%"):
            number /= 100
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise TypeError(f"sparsity: give a number or a string such as '50%', not {value!r}")
    if 1 < number <= 100:
        number /= 100
    if not 0 <= number < 1:
        raise ValueError(f"sparsity: {value!r} is not a sparsity (a fraction below 1, e.g. 0.5)")
    return number


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
