"""`GET /healthz`: the database answers `SELECT 1` and the broker accepts a connection.

Anyone may ask (load balancers, orchestrators, the quick start); the answer says only which
component is up or down. Why one is down (its error names hosts, ports, database names) is
told only to a caller with a valid API key (issue 19 item 15)."""

from __future__ import annotations

from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel

from api.deps import DatabaseDep, EnqueuerDep, api_key_scheme, bearer_scheme, client_address
from persistence.db import Database
from persistence.keys import verify_api_key

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]  # component -> "ok", "down" or (to a key holder) "down: <why>"
    detail: str | None = None


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "down"; say why, briefly
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return f"down: {reason}"
    return "ok"


def _holds_a_key(request: Request, database: Database, key: str | None) -> bool:
    """Whether the caller presented a valid API key. A wrong one counts against the client's
    wrong-key throttle (api.key_throttle); a throttled client, or a database that cannot
    answer, gets the anonymous answer (never a 429 or 503 for that: health checks go on)."""
    if not key:
        return False
    throttle = request.app.state.key_throttle
    client = client_address(request)
    if throttle.retry_after(client) is not None:
        return False
    try:
        with database.session() as session:
            owner = verify_api_key(session, key)
            session.commit()
    except Exception:  # the database is down: its check below says so
        return False
    if owner is None:
        throttle.record_failure(client)
    return owner is not None


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness and readiness: database and broker",
    description="Each check is `ok` or `down`; with a valid API key a check that is down "
    "also says why (`down: <error>`).",
    responses={503: {"model": Health, "description": "A component is down (named in detail)"}},
)
async def healthz(
    request: Request,
    database: DatabaseDep,
    enqueuer: EnqueuerDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> JSONResponse:
    checks: dict[str, str] = {}

    async def run(name: str, probe) -> None:
        checks[name] = await anyio.to_thread.run_sync(_check, probe)

    async with anyio.create_task_group() as group:  # both at once: a slow broker is not summed
        group.start_soon(run, "database", database.ping)
        group.start_soon(run, "broker", enqueuer.ping)
    key = bearer.credentials if bearer is not None else api_key
    if not await anyio.to_thread.run_sync(_holds_a_key, request, database, key):
        checks = {name: "ok" if state == "ok" else "down" for name, state in checks.items()}
    down = sorted(name for name, state in checks.items() if state != "ok")
    health = Health(
        status="unavailable" if down else "ok",
        checks=dict(sorted(checks.items())),
        detail=f"{', '.join(down)} down" if down else None,
    )
    return JSONResponse(health.model_dump(), status_code=503 if down else 200)
