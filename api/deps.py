"""Dependencies shared by the routes: settings, database session, current owner, owned job."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import JobNotFound, StudyNotFound, TooManyFailedKeys, Unauthorized
from api.key_throttle import FailedKeyThrottle
from persistence.artifacts import ArtifactStore
from persistence.broker import JobSender
from persistence.db import Database
from persistence.keys import verify_api_key
from persistence.repositories import JobRepository, StudyRepository
from persistence.settings import Settings
from persistence.tables import Job, Owner, Study

# Both schemes appear in OpenAPI; neither fails on its own (we answer 401 in our shape).
bearer_scheme = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


# The app-state getters are `async def`: FastAPI runs a plain `def` dependency in its thread
# pool, and each such hop costs more than the attribute read (a request crosses to the pool
# for every sync dependency; under concurrent clients those hops were a large share of a
# GET /jobs/{id}'s server time).


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_database(request: Request) -> Database:
    return request.app.state.database


async def get_enqueuer(request: Request) -> JobSender:
    return request.app.state.enqueuer


async def get_artifact_store(request: Request) -> ArtifactStore:
    return request.app.state.artifact_store


async def get_session(
    database: Annotated[Database, Depends(get_database)],
) -> AsyncIterator[Session]:
    """One session per request; whatever the handler did not commit is rolled back.

    Opening a session does no I/O (it connects on first use), so it opens here on the event
    loop; closing it gives the connection back to the pool (a rollback: I/O), so that runs in
    the thread pool.
    """
    session = database.sessionmaker()
    try:
        yield session
    except BaseException:
        await run_in_threadpool(session.rollback)
        raise
    finally:
        await run_in_threadpool(session.close)


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
SessionDep = Annotated[Session, Depends(get_session)]
EnqueuerDep = Annotated[JobSender, Depends(get_enqueuer)]
ArtifactStoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]


def client_address(request: Request) -> str:
    """The caller as the ASGI server reports it (uvicorn --proxy-headers behind a proxy)."""
    return request.client.host if request.client is not None else "unknown"


def get_current_owner(
    request: Request,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Owner:
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise Unauthorized("missing API key")
    throttle: FailedKeyThrottle = request.app.state.key_throttle
    client = client_address(request)
    wait_s = throttle.retry_after(client)
    if wait_s is not None:
        raise TooManyFailedKeys(wait_s)
    owner = verify_api_key(session, key)
    if owner is None:
        session.rollback()
        throttle.record_failure(client)
        raise Unauthorized("invalid API key")
    session.commit()  # the throttled last_used_at, if it was written
    return owner


CurrentOwner = Annotated[Owner, Depends(get_current_owner)]


def parse_uuid(value: str) -> uuid.UUID | None:
    """Ids in paths are read by hand: anything that is not a UUID is simply not found (404),
    never a 422 that would tell path tricks apart from unknown ids."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def get_owned_job(
    job_id: Annotated[str, Path(description="Job id (UUID)", max_length=64)],
    owner: CurrentOwner,
    session: SessionDep,
) -> Job:
    parsed = parse_uuid(job_id)
    job = JobRepository(session).get(parsed, owner_id=owner.id) if parsed else None
    if job is None:
        raise JobNotFound()
    return job


OwnedJob = Annotated[Job, Depends(get_owned_job)]


def get_owned_study(
    study_id: Annotated[str, Path(description="Study id (UUID)", max_length=64)],
    owner: CurrentOwner,
    session: SessionDep,
) -> Study:
    parsed = parse_uuid(study_id)
    study = StudyRepository(session).get(parsed, owner_id=owner.id) if parsed else None
    if study is None:
        raise StudyNotFound()
    return study


OwnedStudy = Annotated[Study, Depends(get_owned_study)]


def idempotency_key_header(what: str) -> object:
    """The optional `Idempotency-Key` header of a create endpoint (`what`: job, study)."""
    return Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description=f"Same key and body: the same {what} again; same key, other body: 409",
        ),
    ]
