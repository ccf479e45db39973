"""`srnet keys/reconcile/worker` commands, the bootstrap key of `srnet serve`, the Celery
configuration, and the import weight of the service's processes."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from persistence.db import Database
from persistence.keys import verify_api_key
from persistence.settings import Settings, WorkerSettings
from srnet.cli import main
from srnet.serve import bootstrap_api_key
from worker.celery_app import make_celery_app, worker_argv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def service_env(monkeypatch, tmp_path, sqlite_url):
    monkeypatch.chdir(tmp_path)  # no stray .env, and ./var lands here if anything uses it
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
    monkeypatch.setenv("ARTIFACT_STORE", f"file://{tmp_path / 'artifacts'}")
    return sqlite_url


def test_keys_create_list_and_revoke(service_env, capsys):
    assert main(["keys", "create", "--owner", "lab-x", "--name", "laptop"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("srn_") and len(key) > 40
    database = Database(service_env)
    try:
        with database.session() as session:
            assert verify_api_key(session, key).name == "lab-x"

        assert main(["keys", "list", "--owner", "lab-x"]) == 0
        listing = capsys.readouterr().out
        assert key[:12] in listing and "active" in listing and "laptop" in listing
        assert key not in listing  # only the display prefix is ever shown again

        assert main(["keys", "revoke", key[:12]]) == 0
        with database.session() as session:
            assert verify_api_key(session, key) is None
        assert main(["keys", "revoke", key[:12]]) == 1  # nothing left to revoke
    finally:
        database.dispose()


def test_keys_refuse_a_database_that_does_not_exist(monkeypatch, tmp_path, capsys):
    """`cd elsewhere && srnet keys create` must not make a new empty database."""
    monkeypatch.chdir(tmp_path)
    for name in ("DATABASE_URL", "SRNET_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SRNET_HOME", str(tmp_path / "nowhere"))
    assert main(["keys", "create", "--owner", "lab-x"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"no database at {tmp_path / 'nowhere' / 'srnet.db'}" in err
    assert f"database sqlite:///{tmp_path / 'nowhere' / 'srnet.db'}" in err  # where it looked
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.iterdir())


def test_serve_writes_a_new_key_to_a_file_only_its_owner_reads(tmp_path):
    from srnet.serve import write_key_file

    path = write_key_file(tmp_path / "home" / "api-key", "srn_first")
    assert path.read_text() == "srn_first\n" and (path.stat().st_mode & 0o777) == 0o600
    path.chmod(0o644)
    write_key_file(path, "srn_second")
    assert path.read_text() == "srn_second\n" and (path.stat().st_mode & 0o777) == 0o600


def test_command_line_prints_the_key_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    from persistence.db import upgrade_database

    upgrade_database(url)  # the service made it (srnet serve / srnet migrate)
    result = subprocess.run(
        [sys.executable, "-m", "srnet", "keys", "create", "--owner", "nlp-lab"],
        cwd=ROOT,
        env={**os.environ, "SRNET_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("srn_") and "\n" not in key
    from sqlalchemy import select

    from persistence.keys import hash_key
    from persistence.tables import ApiKey

    database = Database(url)
    try:
        with database.session() as session:
            assert verify_api_key(session, key).name == "nlp-lab"
            assert session.scalar(select(ApiKey.key_hash)) == hash_key(key)
    finally:
        database.dispose()


def test_reconcile_once_reports_what_it_did(service_env, capsys):
    assert main(["reconcile", "--once"]) == 0
    assert capsys.readouterr().out.strip() == (
        "recovered 0, failed 0, cancelled 0, resent 0, send errors 0"
    )


def test_serve_prints_a_new_key_once_and_honours_a_bootstrap_key(sqlite_url):
    settings = Settings(_env_file=None, database_url=sqlite_url)
    database = Database(sqlite_url)
    try:
        first = bootstrap_api_key(settings, database)
        assert first is not None and first.startswith("srn_")
        assert bootstrap_api_key(settings, database) is None  # a key exists: none printed
        with database.session() as session:
            assert verify_api_key(session, first).name == "admin"

        chosen = "srn_" + uuid.uuid4().hex + uuid.uuid4().hex
        with_key = Settings(
            _env_file=None,
            database_url=sqlite_url,
            SRNET_BOOTSTRAP_API_KEY=chosen,
            SRNET_BOOTSTRAP_OWNER="lab-y",
        )
        assert bootstrap_api_key(with_key, database) is None  # fmt: skip
        with database.session() as session:
            assert verify_api_key(session, chosen).name == "lab-y"
    finally:
        database.dispose()


def test_worker_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("WORKER_QUEUES", "cpu")
    monkeypatch.setenv("WORK_DIR", "/srv/srnet/work")
    settings = WorkerSettings(_env_file=None)
    assert settings.queues == ("cpu",)
    assert str(settings.job_dir("abc")) == "/srv/srnet/work/jobs/abc"
    with pytest.raises(ValidationError, match="WORKER_QUEUES"):
        WorkerSettings(_env_file=None, WORKER_QUEUES="gpu,tpu")


def test_celery_is_configured_for_long_jobs_that_must_not_be_lost():
    settings = Settings(
        _env_file=None,
        broker_url="redis://127.0.0.1:6379/0",
        broker_key_prefix="lab1:",
        broker_visibility_timeout_s=3 * 24 * 3600,
    )
    conf = make_celery_app(settings, WorkerSettings(_env_file=None)).conf  # fmt: skip
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1 and conf.worker_max_tasks_per_child == 1
    assert conf.worker_pool == "prefork" and conf.worker_concurrency == 1
    assert sorted(q.name for q in conf.task_queues) == ["cpu", "gpu"]
    options = conf.broker_transport_options
    assert options["visibility_timeout"] == 3 * 24 * 3600
    assert options["global_keyprefix"] == "lab1:"

    argv = worker_argv(WorkerSettings(_env_file=None, WORKER_QUEUES="gpu"))
    assert argv[:3] == ["-A", "worker.celery_app", "worker"]
    assert argv[argv.index("--queues") + 1] == "gpu"
    assert argv[argv.index("--max-tasks-per-child") + 1] == "1"


def test_the_api_s_client_and_the_worker_share_one_celery_configuration(tmp_path):
    from persistence.broker import CeleryJobSender, celery_config, make_celery_client

    settings = Settings(_env_file=None, broker_url="redis://127.0.0.1:6379/0",
                        broker_key_prefix="lab1:", default_queue="cpu")  # fmt: skip
    client = make_celery_client(settings).conf
    worker = make_celery_app(settings, WorkerSettings(_env_file=None)).conf
    shared = celery_config(settings)
    assert shared["broker_transport_options"]["global_keyprefix"] == "lab1:"
    for key, value in shared.items():
        assert client[key] == worker[key] == value, key
    # The embedded broker's folder is made by whichever app sends first.
    broker = tmp_path / "fresh" / "broker.db"
    embedded = settings.model_copy(update={"broker_url": f"sqla+sqlite:///{broker}"})
    CeleryJobSender.from_settings(embedded).close()
    assert broker.parent.is_dir()


def test_the_service_processes_start_without_torch(tmp_path):
    """The API, `srnet serve`, the reconciler and the worker's main process (until it preloads)
    import no torch: they start fast and never touch CUDA."""
    code = (
        "import sys, srnet.cli, srnet.service_cli, srnet.serve, srnet.keys_cli, worker.reconciler, "
        "worker.celery_app, worker.tasks, api.main\n"
        "srnet.cli.build_parser()\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var").exists()  # importing creates no folder


def test_migrate_brings_a_new_database_up_to_date(monkeypatch, tmp_path, capsys):
    from sqlalchemy import inspect

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'fresh' / 'srnet.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate", "--wait", "5"]) == 0
    assert "up to date" in capsys.readouterr().out
    database = Database(url)
    try:
        assert {"jobs", "job_events", "metrics", "artifacts"} <= set(
            inspect(database.engine).get_table_names()
        )
    finally:
        database.dispose()


def test_migrate_gives_up_on_a_database_that_does_not_answer(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert main(["migrate", "--wait", "0"]) == 4
    assert "does not answer" in capsys.readouterr().err


def test_the_reconciler_marks_each_pass_for_its_health_check(tmp_path, sqlite_url):
    import threading

    from tests.worker.conftest import RecordingSender
    from worker.reconciler import Reconciler

    database = Database(sqlite_url)
    alive = tmp_path / "alive"
    stop = threading.Event()
    reconciler = Reconciler(database, RecordingSender(), stale_after_s=300, resend_after_s=120)

    def after_pass() -> None:
        alive.touch()
        stop.set()

    try:
        reconciler.run_forever(stop, 0.01, after_pass=after_pass)
    finally:
        database.dispose()
    assert alive.exists()
