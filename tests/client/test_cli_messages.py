"""What the command line and the client say when a user writes what the README shows, pipes
the output, or points them at the wrong URL (issue 19 item 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from srcore.jobspec.spec import JobSpec
from srnet.cli import main
from srnet.client import NotTheService, SRNetClient
from srnet.client.models import sparsity_fraction
from tests.client.live_service import LiveService

ROOT = Path(__file__).resolve().parents[2]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def env(service: LiveService, key: str, monkeypatch) -> str:
    monkeypatch.setenv("SRNET_URL", service.url)
    monkeypatch.setenv("SRNET_API_KEY", key)
    return key


def finished(client: SRNetClient, service: LiveService, shift: float = 0.0) -> str:
    job = client.submit({"name": f"msg-{shift}", "pruning": {"sparsities": [0.5]}})
    service.worker(job.id).run_search((0.5,), shift=shift)
    return job.id


def test_runs_sort_descending_as_the_readme_writes_it(env, client, service, capsys):
    low, high = finished(client, service), finished(client, service, shift=0.05)
    code, out, err = run(capsys, "runs", "--json", "--stage", "search", "--sort", "-ood.hans")
    assert code == 0, err
    ids = [r["job_id"] for r in json.loads(out)]
    assert ids.index(high) < ids.index(low)  # the shift moved its OOD accuracy up
    code, _, err = run(capsys, "runs", "--sort", "-ood.hanz")
    assert code == 2 and "no run here has the OOD set 'hanz'" in err and "ood.hans" in err


def test_a_url_that_answers_a_web_page_is_named_not_a_traceback(env, service, capsys, monkeypatch):
    monkeypatch.setenv("SRNET_URL", service.url + "/web/")
    code, _, err = run(capsys, "list")
    assert code == 2
    assert "answered with a web page (HTML), not the SRNet API" in err
    assert f"e.g. {service.url}, not" in err and "Traceback" not in err


def test_the_client_names_the_url_that_is_not_the_api(service, key):
    with SRNetClient(service.url + "/web", key) as client, pytest.raises(NotTheService):
        client.list()


def test_one_sparsity_grammar_in_the_client_and_errors_that_give_the_fraction():
    assert sparsity_fraction("50%") == 0.5 and sparsity_fraction("0.7") == 0.7
    assert sparsity_fraction(70) == 0.7 and sparsity_fraction(0.5) == 0.5
    with pytest.raises(ValueError, match=r"sparsity: give a fraction such as 0\.5"):
        sparsity_fraction("half")
    with pytest.raises(ValueError, match="not a sparsity"):
        sparsity_fraction(150)
    for given in (50, "50%"):
        with pytest.raises(ValueError, match=r"write 0\.5 for 50%"):
            JobSpec.model_validate({"pruning": {"sparsities": [0.7, given]}})


def test_the_download_takes_a_percentage_string(client, service, tmp_path):
    job_id = finished(client, service)
    downloads = client.download(job_id, "mask", tmp_path, sparsity="50%")  # was a TypeError
    assert [d.artifact.sparsity for d in downloads] == [0.5]
    assert all(d.path.is_file() for d in downloads)


def test_a_closed_pipe_ends_the_listing_quietly(service, key):
    env = {**os.environ, "SRNET_URL": service.url, "SRNET_API_KEY": key}
    script = "import sys; from srnet.cli import main; sys.exit(main(['list', '--all']))"
    producer = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    producer.stdout.close()  # `| head -0`: the reader is gone before the first line
    _, err = producer.communicate(timeout=60)
    assert producer.returncode == 0, err
    assert b"Traceback" not in err and b"BrokenPipe" not in err


def test_list_keeps_the_end_of_long_names_that_tells_children_apart(env, client, capsys):
    """Issue 19 item 8: names were cut to 24 characters, so every child of a study read alike."""
    base = "mnli-hans-full-data-bias-models · bias model balanced out-of-fold · loss"
    for loss in ("poe", "reweight"):
        client.submit({"name": f"{base} {loss}"})
    code, out, err = run(capsys, "list")
    assert code == 0, err
    names = [line for line in out.splitlines() if "mnli-hans-full" in line]
    assert len(names) == 2
    assert any("· loss poe" in line for line in names)
    assert any("loss reweight" in line for line in names)
    assert all("…" in line for line in names)


def test_short_ids_name_studies_and_jobs_in_the_client_and_the_study_cli(
    env, client, service, capsys
):
    """Issue 19 item 9: short id prefixes worked for `srnet` job commands only."""
    import asyncio

    from srnet.client import AsyncSRNetClient, NotFound

    job = client.submit({"name": "short-id-job"})
    assert client.get(job.id[:8]).id == job.id
    assert client.get(job.id[:8].upper()).id == job.id  # hex in any case
    study = client.submit_study({"name": "short-id-study", "base": {"training": {"max_steps": 5}},
                                 "dense_references": False})  # fmt: skip
    assert client.get_study(study.id[:8]).id == study.id
    code, out, err = run(capsys, "study", "status", study.id[:8])
    assert code == 0, err
    assert study.id in out or "short-id-study" in out

    async def via_async() -> str:
        async with AsyncSRNetClient(service.url, env) as aclient:
            return (await aclient.get(job.id[:6])).id

    assert asyncio.run(via_async()) == job.id
    with pytest.raises(NotFound, match="no study of yours has an id starting with 'ffff0000'"):
        client.get_study("ffff0000")


def test_study_status_and_watch_show_the_studys_progress(env, client, service, capsys):
    """Issue 19 item 7: no progress anywhere for a study; now status and watch show it."""
    import threading
    import time

    study = client.submit_study({"name": "watched", "base": {"training": {"max_steps": 5}},
                                 "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
                                 "dense_references": False})  # fmt: skip
    code, out, err = run(capsys, "study", "status", study.id[:8])
    assert code == 0, err
    assert "progress 0 of 2 jobs done · 0% · ETA unknown yet" in out

    def work() -> None:
        for child in study.children:
            time.sleep(0.2)
            service.worker(child.job_id).run_search((0.5,), pause_s=0.01)

    worker = threading.Thread(target=work)
    worker.start()
    code, out, err = run(capsys, "study", "watch", study.id, "--interval", "0.05")
    worker.join()
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0].startswith(("queued", "running"))
    assert any("1 of 2 jobs done" in line for line in lines)
    assert lines[-1].startswith("succeeded") and "2 of 2 jobs done · 100%" in lines[-1]
    assert "elapsed" in lines[-1] and "ETA" not in lines[-1]
    assert out.count("succeeded") == 2  # the children table
