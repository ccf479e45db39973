from pathlib import Path

import pytest
from pydantic import ValidationError

from persistence.settings import Settings, WorkerSettings

STRONG = "k" * 40


def make(**kw) -> Settings:
    return Settings(_env_file=None, **kw)


def _clean(monkeypatch):
    for name in ("DATABASE_URL", "BROKER_URL", "ARTIFACT_STORE", "ENVIRONMENT", "WORK_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"SRNET_{name}", raising=False)
    monkeypatch.delenv("SRNET_HOME", raising=False)


def test_defaults_need_no_service_and_live_in_one_per_user_home(monkeypatch, tmp_path):
    _clean(monkeypatch)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    home = tmp_path / ".local" / "share" / "srnet"  # whatever the current folder
    settings = make()
    assert settings.home == home
    assert settings.database_url == f"sqlite:///{home}/srnet.db"
    assert settings.broker_url == f"sqla+sqlite:///{home}/broker.db"
    assert settings.artifact_store == f"file://{home}/artifacts"
    assert WorkerSettings(_env_file=None).work_dir == home / "work"
    assert settings.is_sqlite and not settings.broker_is_redis
    assert settings.broker_transport_options() == {}
    assert (
        settings.locations()
        == f"database sqlite:///{home}/srnet.db; artifacts file://{home}/artifacts"
    )
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert make().home == tmp_path / "xdg" / "srnet"


def test_srnet_home_moves_every_default_and_explicit_settings_win(monkeypatch, tmp_path):
    _clean(monkeypatch)
    monkeypatch.setenv("SRNET_HOME", "var")  # the quick start's choice
    settings = make()
    assert settings.database_url == "sqlite:///var/srnet.db"
    assert settings.broker_url == "sqla+sqlite:///var/broker.db"
    assert settings.artifact_store == "file://./var/artifacts"
    assert WorkerSettings(_env_file=None).work_dir == Path("var/work")
    monkeypatch.setenv("SRNET_DATABASE_URL", "postgresql://u:pw@db/srnet")
    settings = make()
    assert settings.database_url == "postgresql+psycopg://u:pw@db/srnet"
    assert "pw" not in settings.locations() and "u:***@db" in settings.locations()


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db:5432/srnet")
    monkeypatch.setenv("BROKER_URL", "redis://cache:6379/0")
    monkeypatch.setenv("BROKER_KEY_PREFIX", "lab1:")
    monkeypatch.setenv("SRNET_BOOTSTRAP_API_KEY", STRONG)
    settings = make()
    # psycopg 3 is the shipped driver; bare postgres URLs would pick psycopg2.
    assert settings.database_url == "postgresql+psycopg://u@db:5432/srnet"
    assert settings.bootstrap_api_key.get_secret_value() == STRONG
    options = settings.broker_transport_options()
    assert options["global_keyprefix"] == "lab1:"
    assert options["visibility_timeout"] >= 24 * 3600


@pytest.mark.parametrize("key", ["changethis", "short"])
def test_weak_bootstrap_key_refused_outside_development(key):
    with pytest.raises(ValidationError, match="SRNET_BOOTSTRAP_API_KEY is weak"):
        make(
            environment="production",
            bootstrap_api_key=key,
            database_url="postgresql://db/x",
            artifact_store="s3://bucket",
        )
    with pytest.warns(UserWarning, match="weak"):
        assert make(environment="development", bootstrap_api_key=key).bootstrap_api_key


def test_production_refuses_relative_locations(monkeypatch):
    monkeypatch.setenv("SRNET_HOME", "var")
    with pytest.raises(ValidationError) as info:
        make(environment="production")
    text = str(info.value)
    assert "DATABASE_URL" in text and "ARTIFACT_STORE" in text
    ok = make(
        environment="production",
        database_url="postgresql://db/srnet",
        artifact_store="file:///srv/srnet/artifacts",
        bootstrap_api_key=STRONG,
    )
    assert ok.environment == "production"


@pytest.mark.parametrize("store", ["ftp://x", "s3://", "/plain/path"])
def test_unknown_artifact_store_is_refused(store):
    with pytest.raises(ValidationError, match="artifact_store"):
        make(artifact_store=store)


def test_every_setting_is_read_under_the_srnet_prefix(monkeypatch):
    from persistence.settings import WorkerSettings

    monkeypatch.setenv("SRNET_DATABASE_URL", "postgres://u@db:5432/srnet")
    monkeypatch.setenv("SRNET_BROKER_KEY_PREFIX", "lab2:")
    monkeypatch.setenv("SRNET_MAX_PAGE_SIZE", "50")
    monkeypatch.setenv("SRNET_WORKER_QUEUES", "cpu")
    monkeypatch.setenv("SRNET_WORK_DIR", "/srv/work")
    settings, worker = make(), WorkerSettings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://u@db:5432/srnet"
    assert settings.broker_transport_options() == {}  # not Redis: no prefix option
    assert settings.broker_key_prefix == "lab2:" and settings.max_page_size == 50
    assert worker.queues == ("cpu",) and str(worker.work_dir) == "/srv/work"


def test_old_names_are_deprecated_aliases_and_the_prefixed_name_wins(monkeypatch, caplog):
    import persistence.settings as config

    monkeypatch.setattr(config, "_warned", set())
    monkeypatch.setenv("DEFAULT_QUEUE", "cpu")
    monkeypatch.setenv("JOB_MAX_ATTEMPTS", "7")
    monkeypatch.setenv("SRNET_JOB_MAX_ATTEMPTS", "5")
    with caplog.at_level("WARNING", logger="persistence.settings"):
        settings = make()
    assert settings.default_queue == "cpu" and settings.job_max_attempts == 5
    assert "DEFAULT_QUEUE is deprecated: use SRNET_DEFAULT_QUEUE" in caplog.text
    assert "JOB_MAX_ATTEMPTS is deprecated" not in caplog.text  # its new name is set too
    assert config.DEPRECATED_NAMES["WORK_DIR"] == "SRNET_WORK_DIR"
    assert "SRNET_BOOTSTRAP_API_KEY" not in config.DEPRECATED_NAMES.values()


def test_queue_names_are_defined_once():
    from persistence.settings import QUEUES, QueueName
    from worker.celery_app import make_celery_app

    assert QUEUES == ("gpu", "cpu") and set(QUEUES) == set(QueueName.__args__)
    conf = make_celery_app(make(), None).conf
    assert tuple(q.name for q in conf.task_queues) == QUEUES
