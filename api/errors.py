"""Typed API errors: each carries its HTTP status and is declared in the OpenAPI `responses`
of the routes that raise it, so clients know them."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar, get_args

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    detail: str
    type: str


class APIError(StarletteHTTPException):
    """Base of the API's errors. A Starlette HTTPException so that FastAPI passes it through
    untouched even when raised while the request body is being read."""

    status_code: ClassVar[int] = 500  # type: ignore[misc]
    type: ClassVar[str] = "internal_error"
    description: ClassVar[str] = "Internal error"

    def __init__(self, detail: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(self.status_code, detail or self.description, dict(headers or {}))

    def body(self) -> dict[str, Any]:
        return ErrorBody(detail=str(self.detail), type=self.type).model_dump()


class Unauthorized(APIError):
    status_code = 401
    type = "unauthorized"
    description = "Missing or invalid API key (Authorization: Bearer <key> or X-API-Key)"

    def __init__(self, detail: str | None = None):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class TooManyFailedKeys(APIError):
    status_code = 429
    type = "too_many_failed_keys"
    description = (
        "Too many wrong API keys from this client: wait the Retry-After seconds (a correct key "
        "is refused too meanwhile)"
    )

    def __init__(self, retry_after_s: int):
        super().__init__(
            f"too many wrong API keys from this client; try again in {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


class OwnerLimitExceeded(APIError):
    status_code = 429
    type = "owner_limit_reached"
    description = (
        "The submission would exceed one of this owner's limits (queued jobs or studies); "
        "nothing was stored: retry after Retry-After seconds, when some jobs have started"
    )

    def __init__(self, detail: str, retry_after_s: int):
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class JobNotFound(APIError):
    status_code = 404
    type = "job_not_found"
    description = "No such job for this API key"


class StudyNotFound(APIError):
    status_code = 404
    type = "study_not_found"
    description = "No such study for this API key"


class StudyNotCancellable(APIError):
    status_code = 409
    type = "study_not_cancellable"
    description = "Every job of the study has already finished"


class ArtifactNotFound(APIError):
    status_code = 404
    type = "artifact_not_found"
    description = "No such artifact for this job"


class IdempotencyKeyReused(APIError):
    status_code = 409
    type = "idempotency_key_reused"
    description = "The Idempotency-Key was already used with another request body"


class JobNotCancellable(APIError):
    status_code = 409
    type = "job_not_cancellable"
    description = "The job has already finished"


class PayloadTooLarge(APIError):
    status_code = 413
    type = "payload_too_large"
    description = "The request body is larger than the limit"


class RangeNotSatisfiable(APIError):
    status_code = 416
    type = "range_not_satisfiable"
    description = "The Range header does not fit the artifact"

    def __init__(self, size: int, detail: str | None = None):
        super().__init__(detail, headers={"Content-Range": f"bytes */{size}"})


def responses(*errors: type[APIError]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` entry for the errors a route may raise (a route that asks
    for a key may also throttle wrong ones)."""
    declared: dict[int | str, dict[str, Any]] = {}
    if Unauthorized in errors and TooManyFailedKeys not in errors:
        errors = (*errors, TooManyFailedKeys)
    for error in errors:
        entry = declared.setdefault(error.status_code, {"model": ErrorBody, "description": ""})
        entry["description"] = "; ".join(
            d for d in (entry["description"], f"`{error.type}`: {error.description}") if d
        )
    return declared


async def api_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)


BODY_PARSE_ERROR = "There was an error parsing the body"


async def http_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own errors (unknown route, wrong method) in the same shape as ours."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == BODY_PARSE_ERROR:
        # FastAPI's 400 for a body it cannot decode (not UTF-8): a 422 like any other bad JSON
        # (the documented answer; found by the schemathesis run, tests/api/test_fuzz.py).
        error = {"loc": ["body"], "msg": "the body is not valid UTF-8 JSON", "type": "json_invalid"}
        return JSONResponse({"detail": [error]}, status_code=422)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        {"detail": str(exc.detail), "type": kind},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


# Cross-field checks of the job spec raise at model level ("debias.teacher: conf_reg needs a
# teacher"); their message names the field, so the 422 `loc` can point at it too.
_NAMED_FIELD = re.compile(r"^(?:Value error, )?([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): ")


def _point_at_named_field(error: dict[str, Any]) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    match = _NAMED_FIELD.match(str(error.get("msg", "")))
    if loc == ("body",) and match:
        return {**error, "loc": ("body", *match.group(1).split("."))}
    return error


def _without_value_error_prefix(error: dict[str, Any]) -> dict[str, Any]:
    """pydantic prefixes a validator's ValueError with "Value error, ": users need the rest."""
    message = str(error.get("msg", ""))
    if message.startswith("Value error, "):
        return {**error, "msg": message.removeprefix("Value error, ")}
    return error


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`Model | None`, `dict[str, Model]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _names_at(model: type[BaseModel] | None, path: tuple[Any, ...]) -> list[str]:
    """The field names a model accepts at `path` (dict keys and list indexes are stepped over)."""
    for part in path:
        if model is None:
            return []
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            continue  # a dict key or list index: the model inside stays the same kind
        model = _model_in(field.annotation)
    if model is None:
        return []
    return sorted({field.alias or name for name, field in model.model_fields.items()})


def _name_the_extra_key(error: dict[str, Any], model: type[BaseModel] | None) -> dict[str, Any]:
    """ "Extra inputs are not permitted" → "unknown field 'sparsitys'; did you mean
    'sparsities'?" (close matches by difflib among the fields allowed there)."""
    if error.get("type") != "extra_forbidden":
        return error
    loc = tuple(error.get("loc", ()))
    if not loc:
        return error
    key = str(loc[-1])
    inner = loc[1:-1] if loc[0] == "body" else loc[:-1]
    allowed = _names_at(model, inner) if loc[0] == "body" else []
    message = f"unknown field '{key}'"
    close = difflib.get_close_matches(key, allowed, n=3, cutoff=0.75)
    if close:
        message += "; did you mean " + " or ".join(f"'{name}'" for name in close) + "?"
    elif allowed:
        message += f"; allowed here: {', '.join(allowed)}"
    return {**error, "msg": message, "ctx": {"key": key, "suggestions": close}}


def _body_model(request: Request) -> type[BaseModel] | None:
    route = request.scope.get("route")
    body_field = getattr(route, "body_field", None)
    info = getattr(body_field, "field_info", None)
    return _model_in(getattr(info, "annotation", None) or getattr(body_field, "type_", None))


class DatabaseUnavailable(APIError):
    status_code = 503
    type = "database_unavailable"
    description = "The database does not answer (restarting?); retry after Retry-After seconds"

    def __init__(self, detail: str | None = None, retry_after_s: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


def is_connection_error(exc: BaseException) -> bool:
    """A database error that says the server is gone or busy, not that the query is wrong."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


async def database_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """The database restarting is a JSON 503 with Retry-After, not a plain-text 500 (a query
    the database refuses for what it says is still a 500, logged)."""
    if not is_connection_error(exc):
        raise exc
    error = DatabaseUnavailable()
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


def json_safe(value: Any) -> Any:
    """`value` with what strict JSON and UTF-8 cannot carry made printable: non-finite floats
    as their names (`NaN`, `Infinity`), lone surrogates as `\\udxxx` escapes. An error that
    echoes a bad input must not fail to encode (a 500) itself."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 shape (`{"detail": [{"loc", "msg", "type", ...}]}`), with model-level
    errors of the spec pointed at the field they name, an unknown key named with close matches,
    and no "Value error, " prefix."""
    assert isinstance(exc, RequestValidationError)
    model = _body_model(request)
    errors = [
        _name_the_extra_key(_without_value_error_prefix(_point_at_named_field(dict(error))), model)
        for error in exc.errors()
    ]
    return JSONResponse({"detail": json_safe(jsonable_encoder(errors))}, status_code=422)


def declare_database_unavailable(app: Any) -> None:
    """Add the 503 `database_unavailable` (ErrorBody, Retry-After) to the OpenAPI answers of
    every operation that needs an API key: the key is looked up in the database, so each of
    them answers that 503 while the database restarts (/healthz documents its own 503). Done on
    the generated document, so the routers need not repeat it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        answer = {
            "description": f"`{DatabaseUnavailable.type}`: {DatabaseUnavailable.description}",
            "headers": {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer"},
                }
            },
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        }
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if isinstance(operation, dict) and operation.get("security"):
                    operation.setdefault("responses", {}).setdefault("503", answer)
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            "ErrorBody", ErrorBody.model_json_schema()
        )
        return schema

    app.openapi = openapi
