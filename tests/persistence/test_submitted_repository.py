"""The generic part of the jobs' and studies' repositories (`SubmittedRepository`): owner-scoped
reads, the idempotency replay rule, keyset paging; on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from persistence.db import Database
from persistence.repositories import (
    MAX_PAGE_SIZE,
    IdempotencyConflict,
    InvalidCursor,
    JobRepository,
    StudyRepository,
    SubmittedRepository,
)
from tests.persistence.fixtures import make_owner

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _create(repo: SubmittedRepository, owner_id: uuid.UUID, **kw):
    if isinstance(repo, JobRepository):
        return repo.create(owner_id=owner_id, spec={"task": "mnli"}, spec_hash="h" * 64, **kw)
    return repo.create(owner_id=owner_id, spec={"base": {}}, children=[], queue="gpu", **kw)


@pytest.fixture(params=[JobRepository, StudyRepository])
def repository_class(request):
    return request.param


def test_both_domains_share_the_base():
    assert issubclass(JobRepository, SubmittedRepository)
    assert issubclass(StudyRepository, SubmittedRepository)
    assert MAX_PAGE_SIZE == 100


def test_reads_are_owner_scoped_and_keys_replay_only_the_same_request(database, repository_class):
    alice, _ = make_owner(database)
    bob, _ = make_owner(database)
    with database.session() as session:
        repo = repository_class(session)
        row = _create(repo, alice, idempotency_key="k", request_hash="a" * 64)
        session.commit()
        assert repo.get(row.id) is row and repo.get(row.id, owner_id=alice) is row
        assert repo.get(row.id, owner_id=bob) is None  # someone else's: as if absent
        assert repo.get(uuid.uuid4()) is None
        assert repo.replay(alice, "k", "a" * 64) is row
        assert repo.replay(alice, "new", "a" * 64) is None
        assert repo.replay(bob, "k", "b" * 64) is None  # keys are per owner
        with pytest.raises(IdempotencyConflict, match="'k' was used with another request"):
            repo.replay(alice, "k", "b" * 64)


def test_pages_are_newest_first_and_stable_under_inserts(database, repository_class):
    owner, _ = make_owner(database)
    other, _ = make_owner(database)
    now = [T0]
    with database.session() as session:
        repo = repository_class(session, clock=lambda: now[0])
        made = []
        for i in range(5):
            now[0] = T0 + timedelta(seconds=i // 2)  # pairs share a timestamp: id breaks ties
            made.append(_create(repo, owner).id)
        _create(repo, other)
        session.commit()
        first = repo.page(repo.owned(owner), limit=2, cursor=None)
        assert first.next_cursor is not None and len(first.items) == 2
        now[0] = T0 + timedelta(hours=1)
        _create(repo, owner)  # a newer row does not shift the pages already handed out
        session.commit()
        second = repo.page(repo.owned(owner), limit=2, cursor=first.next_cursor)
        third = repo.page(repo.owned(owner), limit=2, cursor=second.next_cursor)
        seen = [r.id for p in (first, second, third) for r in p.items]
        expected = sorted(made, key=lambda i: (T0 + timedelta(seconds=made.index(i) // 2), i),
                          reverse=True)  # fmt: skip
        assert seen == expected and third.next_cursor is None
        assert repo.count_owned(owner) == 6 and repo.count_owned(other) == 1
        with pytest.raises(InvalidCursor):
            repo.page(repo.owned(owner), limit=2, cursor="not-a-cursor")


def test_a_job_read_sees_what_another_session_wrote(database: Database):
    owner, _ = make_owner(database)
    with database.session() as session:
        repo = JobRepository(session)
        job = _create(repo, owner)
        session.commit()
        assert job.status == "queued"
        with database.session() as other:
            JobRepository(other).request_cancel(job.id)
            other.commit()
        assert repo.get(job.id).status == "cancelled"  # refreshed, not the stale copy
        assert repo.page(repo.owned(owner), limit=5, cursor=None).items[0].status == "cancelled"
