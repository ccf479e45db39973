"""In-process writers to one SQLite file take turns on a lock, released however a write
transaction ends (the cause of the API's p99 tail was SQLite's sleeping busy handler)."""

import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from persistence.db import Database, SQLiteWriteLock, _file_locks


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with database.engine.begin() as c:
        c.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield database
    database.dispose()


def lock_of(tmp_path) -> threading.Lock:
    return _file_locks[str((tmp_path / "x.db").resolve())]


def test_reads_take_no_lock_writes_hold_it_until_commit(db, tmp_path):
    lock = lock_of(tmp_path)
    with db.session() as s:
        s.execute(text("SELECT count(*) FROM t")).scalar()
        assert not lock.locked()
        s.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert lock.locked()
        s.commit()
        assert not lock.locked()


def test_rollback_error_and_an_unfinished_session_release_it(db, tmp_path):
    lock = lock_of(tmp_path)
    with db.session() as s:
        s.execute(text("INSERT INTO t (v) VALUES ('a')"))
        s.rollback()
    assert not lock.locked()
    with db.session() as s:
        s.execute(text("INSERT INTO t (v) VALUES ('b')"))
        s.commit()
        with pytest.raises(IntegrityError):
            s.execute(text("INSERT INTO t (v) VALUES ('b')"))
        s.rollback()
    assert not lock.locked()
    with db.session() as s:  # closed without commit: the pool's reset rolls back
        s.execute(text("INSERT INTO t (v) VALUES ('c')"))
    assert not lock.locked()
    with db.session() as s:
        assert s.execute(text("SELECT v FROM t ORDER BY v")).scalars().all() == ["b"]


def test_concurrent_writers_take_turns_and_all_commit(db, tmp_path):
    lock = lock_of(tmp_path)
    errors = []

    def writer(i: int) -> None:
        try:
            for j in range(20):
                with db.session() as s:
                    s.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": f"{i}-{j}"})
                    s.execute(text("SELECT count(*) FROM t")).scalar()
                    s.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not lock.locked()
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 160


def test_a_lock_wait_past_the_timeout_goes_ahead(tmp_path):
    guard = SQLiteWriteLock(tmp_path / "y.db", timeout_s=0.05)
    guard.lock.acquire()  # someone else holds it
    try:
        guard.acquire(object())  # gives up after 50 ms instead of waiting forever
        assert guard.holders == set()
    finally:
        guard.lock.release()
