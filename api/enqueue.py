"""Handing jobs to workers: Celery tasks are sent BY NAME, so the API never imports the worker
(or torch). Called only after the job row is committed (enqueue after commit): a worker never
receives a job the database does not have. If the broker is down the job stays `queued` with no
`enqueued_at`, and the reconciler sends it later: the database is the source of truth.
"""

from __future__ import annotations

import uuid
from typing import Protocol

from celery import Celery

from persistence.db import ensure_sqlite_folder
from persistence.settings import Settings

RUN_JOB_TASK = "srnet.run_job"


class JobEnqueuer(Protocol):
    def enqueue(self, job_id: uuid.UUID, queue: str) -> None:
        """Send the job to the broker; raises if the broker did not take it."""
        ...

    def ping(self) -> None:
        """Raise if the broker cannot be reached."""
        ...


def make_celery_client(settings: Settings, name: str = "srnet-api") -> Celery:
    """A Celery app that only sends: no task modules, no result backend."""
    if settings.broker_url.startswith("sqla+sqlite"):
        ensure_sqlite_folder(settings.broker_url.removeprefix("sqla+"))
    app = Celery(name, broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.default_queue,
        task_ignore_result=True,
        broker_transport_options=settings.broker_transport_options(),
        broker_connection_timeout=settings.broker_connect_timeout_s,
        broker_connection_retry_on_startup=False,
        # A request must not hang on a dead broker: a couple of quick retries, then the
        # reconciler's turn.
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 2,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
    )
    return app


class CeleryEnqueuer:
    def __init__(self, settings: Settings, celery_app: Celery | None = None):
        self.settings = settings
        self.celery = celery_app or make_celery_client(settings)

    def enqueue(self, job_id: uuid.UUID, queue: str) -> None:
        self.celery.send_task(RUN_JOB_TASK, args=[str(job_id)], queue=queue)

    def ping(self) -> None:
        with self.celery.connection_for_write() as connection:
            connection.ensure_connection(
                max_retries=1, interval_start=0, timeout=self.settings.broker_connect_timeout_s
            )

    def close(self) -> None:
        self.celery.close()
