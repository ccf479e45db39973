"""What the client raises: typed errors, and the mapping of an error answer to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from srnet.client.models import Job


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


class NotTheService(ClientError):
    """The URL answered, but with a web page (HTML), not the API's JSON: it is not the
    service's base URL (e.g. `http://host:8000/web/` instead of `http://host:8000`)."""

    def __init__(self, url: str):
        base = httpx.URL(url).copy_with(path="/", query=None, fragment=None)
        super().__init__(
            f"{url} answered with a web page (HTML), not the SRNet API: give the service's base "
            f"URL (--url / SRNET_URL), e.g. {str(base).rstrip('/')}, not …/web/ or …/docs"
        )
        self.url = url


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


def field_errors(body: Any) -> list[FieldError]:
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


def raise_for(response: httpx.Response) -> None:
    if response.is_success or response.status_code == 304:
        # No route of the API answers HTML: a page means the URL is not the API's.
        if response.headers.get("content-type", "").startswith("text/html"):
            raise NotTheService(str(response.request.url))
        return
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if status == 422:
        errors = field_errors(body)
        summary = "; ".join(f"{e.field or '(spec)'}: {e.message}" for e in errors)
        raise ValidationFailed(status, summary or "invalid request", errors, body)
    detail = body.get("detail") if isinstance(body, dict) else None
    type_ = body.get("type") if isinstance(body, dict) else None
    text = str(detail) if detail is not None else (response.reason_phrase or "error")
    error_class = {401: Unauthorized, 404: NotFound, 409: Conflict}.get(status, ApiError)
    raise error_class(status, text, type_, body)
