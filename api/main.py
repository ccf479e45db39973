"""The FastAPI application: `create_app(settings)`.

Run with `uvicorn --factory api.main:create_app` (settings from the environment). The database
must be migrated first (`alembic upgrade head` or `persistence.db.upgrade_database`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.artifacts.endpoints import router as artifacts_router
from api.docs import install_docs
from api.errors import (
    APIError,
    api_error_handler,
    database_error_handler,
    declare_database_unavailable,
    http_error_handler,
    validation_error_handler,
)
from api.health import router as health_router
from api.jobs.endpoints import router as jobs_router
from api.jobs.stream import ShutdownSignal
from api.key_throttle import FailedKeyThrottle
from api.limits import BodySizeLimit
from api.monitoring import MetricsMiddleware, Monitoring
from api.runs.endpoints import router as runs_router
from api.studies.endpoints import router as studies_router
from api.web import install_web
from persistence.artifacts import ArtifactStore, make_artifact_store
from persistence.broker import CeleryJobSender, JobSender
from persistence.db import Database
from persistence.keys import ensure_bootstrap_key
from persistence.settings import Settings

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None,
    *,
    enqueuer: JobSender | None = None,
    artifact_store: ArtifactStore | None = None,
) -> FastAPI:
    settings = settings or Settings()
    database = Database.from_settings(settings)
    enqueuer = enqueuer or CeleryJobSender.from_settings(settings)
    artifact_store = artifact_store or make_artifact_store(settings)
    monitoring = Monitoring(database)
    shutdown = ShutdownSignal()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.bootstrap_api_key is not None:
            with database.session() as session:
                key = settings.bootstrap_api_key.get_secret_value()
                if ensure_bootstrap_key(session, key, settings.bootstrap_owner):
                    session.commit()
                    log.info("bootstrap API key stored for owner %s", settings.bootstrap_owner)
        shutdown.install()  # SIGTERM ends open event streams (api.jobs.stream)
        try:
            yield
        finally:
            shutdown.uninstall()
            close = getattr(enqueuer, "close", None)
            if close is not None:
                close()
            database.dispose()

    app = FastAPI(
        title="SRNet",
        summary="Find sparse and robust subnetworks in BERT-family models",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves /docs from the package, under the web pages' policy
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.enqueuer = enqueuer
    app.state.artifact_store = artifact_store
    app.state.monitoring = monitoring
    app.state.shutdown = shutdown
    app.state.key_throttle = FailedKeyThrottle()  # wrong API keys per client (api.key_throttle)

    app.add_exception_handler(APIError, api_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)  # a restart: JSON 503
    app.include_router(jobs_router)
    app.include_router(studies_router)
    app.include_router(runs_router)
    app.include_router(artifacts_router)
    app.include_router(health_router)
    install_web(app)  # the web pages (/web/...) and their static files
    install_docs(app)  # /docs: Swagger UI from the package, no CDN
    declare_database_unavailable(app)  # the JSON 503 in every DB route's answers
    app.add_route("/metrics", monitoring.endpoint, include_in_schema=False)

    # The last added is the outermost: metrics see every answer, the body limit's 413 too.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(MetricsMiddleware, monitoring=monitoring)
    return app
