"""`srnet owners limits`: an admin sets and shows one owner's limits in the service's database."""

from __future__ import annotations

import pytest

from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key
from persistence.repositories import OwnerRepository
from srnet.cli import main


@pytest.fixture
def url(tmp_path, monkeypatch) -> str:
    for name in ("SRNET_MAX_QUEUED_PER_OWNER", "SRNET_MAX_RUNNING_PER_OWNER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SRNET_MAX_RUNNING_PER_OWNER", "3")
    url = f"sqlite:///{tmp_path / 'srnet.db'}"
    upgrade_database(url)
    database = Database(url)
    with database.session() as session:
        create_api_key(session, "lab-a")
        session.commit()
    database.dispose()
    return url


def owner_limits(url: str) -> tuple[int | None, int | None, int | None]:
    database = Database(url)
    try:
        with database.session() as session:
            owner = OwnerRepository(session).get_by_name("lab-a")
            return owner.max_queued_jobs, owner.max_running_jobs, owner.max_studies
    finally:
        database.dispose()


def test_set_show_and_reset_an_owner_s_limits(url, capsys):
    argv = ["owners", "--database-url", url, "limits", "--owner", "lab-a"]
    assert main([*argv, "--queued", "10", "--studies", "0"]) == 0
    assert owner_limits(url) == (10, None, 0)
    shown = capsys.readouterr().out.splitlines()
    assert shown == [
        "queued\t10\t(this owner)",
        "running\t3\t(service default)",
        "studies\tno limit\t(this owner)",
    ]
    assert main([*argv, "--queued", "default"]) == 0
    assert owner_limits(url) == (None, None, 0)


def test_an_unknown_owner_or_a_bad_value_is_refused(url, capsys):
    assert main(["owners", "--database-url", url, "limits", "--owner", "nobody"]) == 1
    assert "no owner 'nobody'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["owners", "--database-url", url, "limits", "--owner", "lab-a", "--running", "-1"])
    assert "not between 0 (no limit)" in capsys.readouterr().err
    assert owner_limits(url) == (None, None, None)
