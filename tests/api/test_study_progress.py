"""A study's progress (issue 19 item 7): children done, the running ones' own progress, the
elapsed time and an ETA from the children's, in GET /studies and GET /studies/{id}."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from api.studies.progress import study_progress
from persistence.tables import Job, JobStatus

STUDY = {
    "name": "progress",
    "base": {"pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}},
    "axes": [{"path": "debias.loss", "values": ["none", "poe", "reweight", "conf_reg"]}],
    "dense_references": False,
}
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def job(status: JobStatus, *, started: float | None = None, finished: float | None = None,
        fraction: float | None = None, eta: float | None = None) -> Job:  # fmt: skip
    return Job(
        id=uuid.uuid4(), status=status.value, job_fraction=fraction, job_eta_s=eta,
        started_at=None if started is None else T0 + timedelta(seconds=started),
        finished_at=None if finished is None else T0 + timedelta(seconds=finished),
    )  # fmt: skip


def test_progress_counts_running_children_by_their_own_fraction_and_estimates_the_rest():
    children = [
        job(JobStatus.succeeded, started=0, finished=600),
        job(JobStatus.running, started=600, fraction=0.5, eta=300),
        job(JobStatus.queued),
        job(JobStatus.queued),
    ]
    progress = study_progress(children, now=T0 + timedelta(seconds=900))
    assert (progress.done, progress.running, progress.total) == (1, 1, 4)
    assert progress.fraction == 0.375  # (1 + 0.5) / 4
    assert progress.elapsed_s == 900
    # 300 s left of the running one, then two more of 600 s each, on the one busy worker
    assert progress.eta_s == 1500


def test_progress_before_anything_ran_and_after_everything_finished():
    waiting = study_progress([job(JobStatus.queued)] * 3)
    assert waiting.fraction == 0 and waiting.elapsed_s is None and waiting.eta_s is None
    over = study_progress([job(JobStatus.succeeded, started=0, finished=60),
                           job(JobStatus.failed, started=10, finished=100)])  # fmt: skip
    assert over.fraction == 1 and over.elapsed_s == 100 and over.eta_s == 0


def test_the_api_serves_the_progress_in_the_list_and_the_study(client, auth, app_database):
    study = client.post("/studies", json=STUDY, headers=auth).json()
    assert study["progress"]["total"] == 4 and study["progress"]["fraction"] == 0
    ids = [c["job_id"] for c in study["children"]]
    now = datetime.now(UTC)
    with app_database.session() as session:
        session.execute(update(Job).where(Job.id == uuid.UUID(ids[0])).values(
            status="succeeded", started_at=now - timedelta(seconds=120),
            finished_at=now - timedelta(seconds=60)))  # fmt: skip
        session.execute(update(Job).where(Job.id == uuid.UUID(ids[1])).values(
            status="running", started_at=now - timedelta(seconds=60), job_fraction=0.5,
            job_eta_s=60.0))  # fmt: skip
        session.commit()
    detail = client.get(f"/studies/{study['id']}", headers=auth).json()["progress"]
    assert detail["done"] == 1 and detail["running"] == 1 and detail["fraction"] == 0.375
    assert 115 <= detail["elapsed_s"] <= 180
    assert detail["eta_s"] == 180.0  # 60 s left of the running child + 2 queued × 60 s, 1 worker
    listed = client.get("/studies", headers=auth).json()["data"][0]["progress"]
    assert listed["done"] == 1 and listed["fraction"] == 0.375
