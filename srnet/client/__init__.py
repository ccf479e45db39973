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

The package: `models` (jobs, events, artifacts, studies), `metrics` (metric curves, flat
rows), `errors`, `calls` (the request building both clients share), `sse` (the event-stream
parser), `downloads`, `sync` (`SRNetClient`) and `async_client` (`AsyncSRNetClient`). Every name
is importable from `srnet.client` itself, as before the split.
"""

from srnet.client.async_client import AsyncSRNetClient
from srnet.client.calls import DEFAULT_URL, Call, connection
from srnet.client.calls import resource_path as _resource_path
from srnet.client.downloads import KINDS_OF as _KINDS_OF
from srnet.client.downloads import ArtifactChoice
from srnet.client.downloads import safe_filename as _safe_filename
from srnet.client.errors import (
    ApiError,
    ArtifactNotAvailable,
    ChecksumMismatch,
    ClientError,
    Conflict,
    FieldError,
    InvalidSpec,
    NotFound,
    NotTheService,
    TargetExists,
    Unauthorized,
    Unreachable,
    ValidationFailed,
    WaitTimeout,
)
from srnet.client.metrics import MetricCurve, MetricPoint, Metrics, flatten_payload, metric_rows
from srnet.client.models import (
    TERMINAL_STATUSES,
    Artifact,
    Download,
    Event,
    Job,
    JobPage,
    Progress,
    StreamMessage,
    Study,
    StudyChild,
    StudyPage,
    describe_artifacts,
    sparsity_fraction,
)
from srnet.client.sse import SSEParser
from srnet.client.sync import SRNetClient

__all__ = [
    "DEFAULT_URL",
    "TERMINAL_STATUSES",
    "_KINDS_OF",
    "ApiError",
    "Artifact",
    "ArtifactChoice",
    "ArtifactNotAvailable",
    "AsyncSRNetClient",
    "Call",
    "ChecksumMismatch",
    "ClientError",
    "Conflict",
    "Download",
    "Event",
    "FieldError",
    "InvalidSpec",
    "Job",
    "JobPage",
    "MetricCurve",
    "MetricPoint",
    "Metrics",
    "NotFound",
    "NotTheService",
    "Progress",
    "SRNetClient",
    "SSEParser",
    "StreamMessage",
    "Study",
    "StudyChild",
    "StudyPage",
    "TargetExists",
    "Unauthorized",
    "Unreachable",
    "ValidationFailed",
    "WaitTimeout",
    "_resource_path",
    "_safe_filename",
    "connection",
    "describe_artifacts",
    "flatten_payload",
    "metric_rows",
    "sparsity_fraction",
]
