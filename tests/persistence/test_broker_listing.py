"""Which jobs the embedded broker (kombu's SQLAlchemy transport on SQLite) still holds a message
for: the reconciler asks by job id, so a backlog that merely waits is never sent again."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from celery import Celery

from persistence.broker import (
    RUN_JOB_TASK,
    CeleryJobSender,
    UnreadableMessage,
    job_id_of_message,
)


@pytest.fixture
def sender(tmp_path: Path):
    app = Celery("srnet-test", broker=f"sqla+sqlite:///{tmp_path / 'broker.db'}",
                 set_as_current=False)  # fmt: skip
    app.conf.update(task_serializer="json", accept_content=["json"])
    job_sender = CeleryJobSender(app)
    yield job_sender
    job_sender.close()


def test_the_embedded_broker_lists_the_jobs_not_yet_delivered(sender):
    jobs = [uuid.uuid4() for _ in range(3)]
    for job_id in jobs:
        sender.send(job_id, "cpu")
    assert sender.pending_jobs("cpu") == set(jobs)
    assert sender.pending_jobs("gpu") == set()
    with sender.app.connection_for_read() as connection:
        queue = connection.SimpleQueue("cpu")
        delivered = queue.get(timeout=5)
        delivered.ack()
        queue.close()
    assert delivered.headers["task"] == RUN_JOB_TASK
    assert sender.pending_jobs("cpu") == set(jobs) - {uuid.UUID(delivered.payload[0][0])}
    assert sender.waiting("cpu") == 2


def test_another_task_is_no_job_and_an_unknown_envelope_is_refused():
    other = '{"headers": {"task": "celery.ping"}, "body": "W10=", "properties": {}}'
    assert job_id_of_message(other) is None
    with pytest.raises(UnreadableMessage):
        job_id_of_message('{"headers": {"task": "srnet.run_job"}, "body": "not base64 json"}')
    with pytest.raises(UnreadableMessage):
        job_id_of_message(b"\x00 not json")
