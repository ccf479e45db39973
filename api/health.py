"""`GET /healthz`: the database answers `SELECT 1` and the broker accepts a connection."""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import DatabaseDep, EnqueuerDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]  # component -> "ok" or "down: <why>"
    detail: str | None = None


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure means "down"; say why, briefly
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        return f"down: {reason}"
    return "ok"


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness and readiness: database and broker",
    responses={503: {"model": Health, "description": "A component is down (named in detail)"}},
)
async def healthz(database: DatabaseDep, enqueuer: EnqueuerDep) -> JSONResponse:
    checks: dict[str, str] = {}

    async def run(name: str, probe) -> None:
        checks[name] = await anyio.to_thread.run_sync(_check, probe)

    async with anyio.create_task_group() as group:  # both at once: a slow broker is not summed
        group.start_soon(run, "database", database.ping)
        group.start_soon(run, "broker", enqueuer.ping)
    down = sorted(name for name, state in checks.items() if state != "ok")
    health = Health(
        status="unavailable" if down else "ok",
        checks=dict(sorted(checks.items())),
        detail=f"{', '.join(down)} down" if down else None,
    )
    return JSONResponse(health.model_dump(), status_code=503 if down else 200)
