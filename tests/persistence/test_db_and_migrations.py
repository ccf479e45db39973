"""The migration runs on both backends and matches the models; SQLite gets its pragmas."""

import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from persistence.db import Database, upgrade_database
from persistence.tables import Base

ROOT = Path(__file__).resolve().parents[2]


def test_migration_matches_the_models(database):
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(database.engine).get_table_names())
    assert {"owners", "api_keys", "jobs", "job_events", "metrics", "artifacts", "studies"} <= tables


def test_downgrade_and_upgrade_again(database_url):
    from alembic import command

    from persistence.db import alembic_config

    config = alembic_config(database_url)
    command.downgrade(config, "base")
    database = Database(database_url)
    try:
        assert "jobs" not in inspect(database.engine).get_table_names()
        upgrade_database(database_url)
        assert "jobs" in inspect(database.engine).get_table_names()
    finally:
        database.dispose()


def test_alembic_command_line_from_the_repository_root(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    current = subprocess.run(
        [sys.executable, "-m", "alembic", "current"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "0005 (head)" in current.stdout


def test_sqlite_pragmas_and_missing_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'folder' / 'srnet.db'}"
    upgrade_database(url)  # creates the folder, like ./var/ on a fresh checkout
    database = Database(url, sqlite_busy_timeout_ms=1234)
    try:
        with database.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 1234
        database.ping()
    finally:
        database.dispose()


def test_0002_adds_studies_and_keeps_existing_jobs(tmp_path):
    """A database with jobs from before studies upgrades in place: the jobs stay, as plain
    jobs (no study), and can then be children of none."""
    from alembic import command

    from persistence.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0001")
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO owners (id, name, created_at) VALUES "
                    "('00000000000000000000000000000001', 'lab', '2026-01-01')"
                )
            )
            connection.execute(text(
                "INSERT INTO jobs (id, owner_id, queue, spec, spec_hash, status, progress_step,"
                " attempt, max_attempts, cancel_requested, created_at, updated_at) VALUES "
                "('00000000000000000000000000000002', '00000000000000000000000000000001', 'gpu',"
                " '{}', 'h', 'queued', 0, 0, 3, 0, '2026-01-01', '2026-01-01')"))  # fmt: skip
        command.upgrade(config, "head")
        columns = {c["name"] for c in inspect(database.engine).get_columns("jobs")}
        assert {"study_id", "study_key"} <= columns
        assert "ix_jobs_study_id" in {
            i["name"] for i in inspect(database.engine).get_indexes("jobs")
        }
        with database.engine.connect() as connection:
            rows = connection.execute(text("SELECT spec_hash, study_id FROM jobs")).all()
        assert rows == [("h", None)]
        command.downgrade(config, "0001")
        assert "studies" not in inspect(database.engine).get_table_names()
        assert "study_id" not in {c["name"] for c in inspect(database.engine).get_columns("jobs")}
    finally:
        database.dispose()


def test_0003_adds_job_progress_tags_and_note_to_existing_jobs(tmp_path):
    from alembic import command

    from persistence.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0002")
    database = Database(url)
    try:
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO owners (id, name, created_at) VALUES "
                "('00000000000000000000000000000001', 'lab', '2026-01-01')"))  # fmt: skip
            connection.execute(text(
                "INSERT INTO jobs (id, owner_id, queue, spec, spec_hash, status, progress_step,"
                " attempt, max_attempts, cancel_requested, created_at, updated_at) VALUES "
                "('00000000000000000000000000000002', '00000000000000000000000000000001', 'gpu',"
                " '{}', 'h', 'succeeded', 0, 1, 3, 0, '2026-01-01', '2026-01-01')"))  # fmt: skip
        command.upgrade(config, "head")
        with database.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT spec_hash, job_fraction, job_eta_s, phase, tags, note FROM jobs")
            ).all()
        assert rows == [("h", None, None, None, None, None)]
        command.downgrade(config, "0002")
        columns = {c["name"] for c in inspect(database.engine).get_columns("jobs")}
        assert not {"job_fraction", "job_eta_s", "phase", "tags", "note"} & columns
        assert "study_id" in columns
    finally:
        database.dispose()


def test_0004_counts_jobs_sent_before_it_as_dispatched(tmp_path):
    """A job on the broker (or running) before fair shares is dispatched; a queued job never
    sent waits for the dispatcher. Owners get no limits of their own."""
    from alembic import command

    from persistence.db import alembic_config

    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = alembic_config(url)
    command.upgrade(config, "0003")
    database = Database(url)
    owner = "00000000000000000000000000000001"
    try:
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO owners (id, name, created_at) VALUES "
                f"('{owner}', 'lab', '2026-01-01')"))  # fmt: skip
            for n, status, enqueued in [(2, "queued", "'2026-01-02'"), (3, "queued", "NULL"),
                                        (4, "running", "'2026-01-02'")]:  # fmt: skip
                connection.execute(text(
                    "INSERT INTO jobs (id, owner_id, queue, spec, spec_hash, status, "
                    "progress_step, attempt, max_attempts, cancel_requested, created_at, "
                    f"updated_at, enqueued_at) VALUES ('{n:032d}', '{owner}', 'gpu', '{{}}', "
                    f"'h', '{status}', 0, 0, 3, 0, '2026-01-01', '2026-01-01', {enqueued})"
                ))  # fmt: skip
        command.upgrade(config, "head")
        with database.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, dispatched_at IS NOT NULL FROM jobs ORDER BY id")
            ).all()
            limits = connection.execute(
                text("SELECT max_queued_jobs, max_running_jobs, max_studies FROM owners")
            ).all()
        assert [flag for _, flag in rows] == [1, 0, 1]
        assert limits == [(None, None, None)]
        command.downgrade(config, "0003")
        assert "dispatched_at" not in {
            c["name"] for c in inspect(database.engine).get_columns("jobs")
        }
    finally:
        database.dispose()


def test_0005_admits_onnx_artifacts_and_keeps_refusing_unknown_kinds(database_url):
    """On both backends: after 0005 an artifact of kind onnx is stored, another kind still
    breaks the check; downgrading drops the onnx rows and restores the old check."""
    import uuid

    import pytest
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from persistence.db import alembic_config

    config = alembic_config(database_url)
    command.downgrade(config, "0004")
    command.upgrade(config, "head")
    database = Database(database_url)
    owner, job = uuid.uuid4().hex, uuid.uuid4().hex

    def artifact(kind: str) -> None:
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO artifacts (id, job_id, kind, name, content_type, size, sha256, "
                f"storage_key, created_at) VALUES ('{uuid.uuid4().hex}', '{job}', '{kind}', "
                f"'{kind}.tar', 'application/x-tar', 1, 'x', 'k-{kind}', '2027-01-01')"
            ))  # fmt: skip

    try:
        with database.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO owners (id, name, created_at) VALUES "
                f"('{owner}', 'lab-0005', '2026-01-01')"))  # fmt: skip
            connection.execute(text(
                "INSERT INTO jobs (id, owner_id, queue, spec, spec_hash, status, "
                "progress_step, attempt, max_attempts, cancel_requested, created_at, "
                f"updated_at) VALUES ('{job}', '{owner}', 'gpu', '{{}}', 'h', 'succeeded', 0, "
                "1, 3, false, '2026-01-01', '2026-01-01')"
            ))  # fmt: skip
        artifact("onnx")
        with pytest.raises(IntegrityError):
            artifact("weights")
        command.downgrade(config, "0004")
        with database.engine.connect() as connection:
            kinds = connection.execute(
                text(f"SELECT kind FROM artifacts WHERE job_id = '{job}'")
            ).scalars()
            assert list(kinds) == []
        with pytest.raises(IntegrityError):
            artifact("onnx")
    finally:
        database.dispose()
        command.upgrade(config, "head")
