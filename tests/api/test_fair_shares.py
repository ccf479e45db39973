"""Per-owner limits over HTTP (429 with Retry-After naming the limit, nothing stored; an admin's
own limit for one owner wins) and a queued job's place in the queue on GET /jobs/{id}."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from persistence.repositories import JobRepository
from persistence.settings import Settings
from persistence.tables import Job, Owner, Study
from tests.api.test_jobs import SPEC
from tests.api.test_studies import STUDY


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=database_url,
        broker_url="redis://127.0.0.1:1/0",  # never used: the enqueuer is replaced
        artifact_store=f"file://{tmp_path / 'artifacts'}",
        max_queued_per_owner=3,
        max_studies_per_owner=1,
        max_running_per_owner=1,
        limit_retry_after_s=42,
    )


def counts(database) -> tuple[int, int]:
    with database.session() as session:
        return (
            session.scalar(select(func.count()).select_from(Study)),
            session.scalar(select(func.count()).select_from(Job)),
        )


def post_job(client, auth, name: str, **headers):
    return client.post("/jobs", json={**SPEC, "name": name}, headers={**auth, **headers})


def test_the_queued_jobs_limit_is_a_429_naming_it_and_stores_nothing(
    client, auth, other_auth, app_database
):
    for i in range(3):
        assert post_job(client, auth, f"j{i}", **{"Idempotency-Key": f"k{i}"}).status_code == 201
    refused = post_job(client, auth, "j3")
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "42"
    body = refused.json()
    assert body["type"] == "owner_limit_reached"
    assert "limit of 3 queued jobs per owner reached: you have 3" in body["detail"]
    assert counts(app_database) == (0, 3)
    # A replay of an accepted request is not a new job: answered, not refused.
    replay = post_job(client, auth, "j0", **{"Idempotency-Key": "k0"})
    assert replay.status_code == 200
    # Another owner has limits of its own.
    assert post_job(client, other_auth, "theirs").status_code == 201


def test_an_owner_s_own_limit_wins_over_the_service_s(client, auth, owner, app_database):
    with app_database.session() as session:
        session.execute(update(Owner).where(Owner.id == owner[0]).values(max_queued_jobs=1))
        session.commit()
    assert post_job(client, auth, "one").status_code == 201
    refused = post_job(client, auth, "two")
    assert refused.status_code == 429 and "limit of 1 queued jobs" in refused.json()["detail"]
    with app_database.session() as session:
        session.execute(update(Owner).where(Owner.id == owner[0]).values(max_queued_jobs=0))
        session.commit()
    for i in range(4):  # 0: no limit for this owner
        assert post_job(client, auth, f"more{i}").status_code == 201


def test_a_study_past_the_queued_limit_or_the_studies_limit_is_refused_whole(
    client, auth, owner, app_database
):
    with app_database.session() as session:
        session.execute(update(Owner).where(Owner.id == owner[0]).values(max_queued_jobs=0))
        session.commit()
    first = client.post("/studies", json=STUDY, headers=auth)
    assert first.status_code == 201, first.text
    before = counts(app_database)
    second = client.post("/studies", json={**STUDY, "name": "again"}, headers=auth)
    assert second.status_code == 429 and second.headers["Retry-After"] == "42"
    assert "limit of 1 studies per owner reached: you have 1" in second.json()["detail"]
    assert counts(app_database) == before
    with app_database.session() as session:  # the queued limit refuses a study's jobs too
        session.execute(
            update(Owner).where(Owner.id == owner[0]).values(max_queued_jobs=1, max_studies=0)
        )
        session.commit()
    third = client.post("/studies", json={**STUDY, "name": "third"}, headers=auth)
    assert third.status_code == 429 and "queued jobs" in third.json()["detail"]
    assert counts(app_database) == before


def test_openapi_declares_the_limit_on_both_submissions(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/jobs", "/studies"):
        assert "owner_limit_reached" in paths[path]["post"]["responses"]["429"]["description"]


def test_get_job_shows_its_place_and_why_it_waits(client, auth, enqueuer, app_database):
    ids = [post_job(client, auth, f"j{i}").json()["id"] for i in range(3)]
    # The first is handed to the broker (one at a time, SRNET_DISPATCH_AHEAD=1); a worker
    # claims it: the owner is at its running limit of 1.
    assert [str(job_id) for job_id, _ in enqueuer.sent] == [ids[0]]
    with app_database.session() as session:
        assert JobRepository(session).claim(uuid.UUID(ids[0]), "w1") is not None
        session.commit()
    running = client.get(f"/jobs/{ids[0]}", headers=auth).json()
    assert running["status"] == "running" and running["queue_place"] is None
    waiting = client.get(f"/jobs/{ids[2]}", headers=auth).json()
    assert waiting["queue_place"] == {
        "position": 2,
        "reason": "1 of your jobs are running; limit 1",
    }
