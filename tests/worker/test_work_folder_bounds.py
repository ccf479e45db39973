"""The work folder stays bounded (issue 11 item 8): the reconciler removes the work folder of a
job it fails or cancels (not one an attempt still holds), and the worker cuts the stage cache
back to SRNET_STAGE_CACHE_MAX_GB after each job, keeping the entries in use."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from persistence.repositories import JobRepository
from persistence.settings import WorkerSettings
from srcore.files import exclusive_lock
from srcore.stage_cache import StageCache
from tests.worker.test_reconciler import database, reconciler, running_job  # noqa: F401
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.tasks import Outcome, execute_job
from worker.workdir import bound_stage_cache, remove_job_dir

MB = 1_000_000


def _work(tmp_path: Path, **kw) -> WorkerSettings:
    return WorkerSettings(_env_file=None, work_dir=tmp_path / "work", **kw)


def _left_behind(work: WorkerSettings, job_id) -> Path:
    """What a worker killed mid-job leaves: checkpoints in WORK_DIR/jobs/<id>, its lock file."""
    folder = work.job_dir(job_id)
    (folder / "work" / "seed-1" / "step-10").mkdir(parents=True)
    (folder / "work" / "seed-1" / "step-10" / "trainer.pt").write_bytes(b"\0" * MB)
    (folder.parent / f".{job_id}.lock").write_text("")
    return folder


def test_a_job_the_reconciler_fails_loses_its_work_folder(database, sender, tmp_path):  # noqa: F811
    work = _work(tmp_path)
    job_id = running_job(database, tmp_path, minutes_ago=10, attempts=2, max_attempts=2)
    folder = _left_behind(work, job_id)
    rec = reconciler(database, sender)
    rec.work = work
    report = rec.run_once()
    assert report.failed == [job_id] and report.cleaned == [job_id]
    assert not folder.exists()
    assert not (folder.parent / f".{job_id}.lock").exists()


def test_a_job_the_reconciler_cancels_loses_its_work_folder(database, sender, tmp_path):  # noqa: F811
    work = _work(tmp_path)
    job_id = running_job(database, tmp_path, minutes_ago=10)
    with database.session() as session:
        JobRepository(session).request_cancel(job_id)
        session.commit()
    folder = _left_behind(work, job_id)
    rec = reconciler(database, sender)
    rec.work = work
    report = rec.run_once()
    assert report.cancelled == [job_id] and report.cleaned == [job_id]
    assert not folder.exists()


def test_a_recovered_job_keeps_its_folder_to_resume_from(database, sender, tmp_path):  # noqa: F811
    work = _work(tmp_path)
    job_id = running_job(database, tmp_path, minutes_ago=10)  # attempts left: queued again
    folder = _left_behind(work, job_id)
    rec = reconciler(database, sender)
    rec.work = work
    report = rec.run_once()
    assert report.recovered == [job_id] and report.cleaned == []
    assert (folder / "work" / "seed-1" / "step-10" / "trainer.pt").exists()


def test_a_folder_an_attempt_still_holds_or_keep_work_dir_is_kept(tmp_path):
    work = _work(tmp_path)
    folder = _left_behind(work, "0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53")
    with exclusive_lock(folder.parent / ".0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53.lock"):
        assert not remove_job_dir(work, "0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53")
    assert folder.exists()
    kept = _work(tmp_path, keep_work_dir=True)
    assert not remove_job_dir(kept, "0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53")
    assert folder.exists()
    assert remove_job_dir(work, "0b5c1c32-8d51-4a57-9a8c-14a0c34c1a53")
    assert not folder.exists()


def _fill_cache(root: Path, keys: list[str]) -> None:
    for i, key in enumerate(keys):
        cache = StageCache(root)
        path, _ = cache.get_or_build(key, lambda tmp: (tmp / "w").write_bytes(b"\0" * MB))
        cache.close()
        stamp = time.time() - 1000 + i
        os.utime(path / ".complete", (stamp, stamp))


def test_the_stage_cache_bound_is_a_documented_setting(tmp_path, monkeypatch):
    assert WorkerSettings(_env_file=None).stage_cache_max_gb == 20.0
    monkeypatch.setenv("SRNET_STAGE_CACHE_MAX_GB", "0.5")
    assert WorkerSettings(_env_file=None).stage_cache_max_gb == 0.5
    field = WorkerSettings.model_fields["stage_cache_max_gb"]
    assert "least recently used" in field.description
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "SRNET_STAGE_CACHE_MAX_GB" in readme


def test_bound_stage_cache_keeps_what_a_job_uses(tmp_path):
    work = _work(tmp_path, stage_cache_max_gb=0.0005)  # 0.5 MB: less than one entry
    _fill_cache(work.stage_cache, ["dense-a", "dense-b", "dense-c", "dense-d"])
    user = StageCache(work.stage_cache)
    user.get_or_build("dense-a", None)  # another job of this host reads the oldest (a hit)
    report = bound_stage_cache(work)
    user.close()
    assert report.removed == ["dense-b", "dense-c", "dense-d"]
    assert report.kept_in_use == ["dense-a"]
    assert [p.name for p in work.stage_cache.iterdir() if p.is_dir()] == ["dense-a"]
    assert bound_stage_cache(_work(tmp_path, stage_cache_max_gb=0)) is None  # 0: no bound


@pytest.mark.slow
def test_the_worker_evicts_after_each_job(worker_context, tiny_model_dir, tmp_path):
    ctx = worker_context
    ctx.worker_settings.stage_cache_max_gb = 0.0015  # 1.5 MB
    _fill_cache(ctx.worker_settings.stage_cache, ["dense-old", "dense-new"])
    missing = str(tmp_path / "nonexistent" / "mnli_train.json")
    job_id = create_job(ctx.database, tiny_job_spec(tiny_model_dir, train_path=missing))
    assert execute_job(job_id, ctx) is Outcome.failed
    left = sorted(p.name for p in ctx.worker_settings.stage_cache.iterdir() if p.is_dir())
    assert left == ["dense-new"]
