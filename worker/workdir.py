"""The worker's folder stays bounded: a finished or dead job's work folder is removed, and the
shared stage cache is cut back to `SRNET_STAGE_CACHE_MAX_GB` after each job.

    WORK_DIR/jobs/<job id>/        one job's files (srcore.jobspec.layout.OutputLayout)
    WORK_DIR/jobs/.<job id>.lock   held by the attempt that runs it (worker.tasks.JobRun)
    WORK_DIR/cache/                the stage cache (srcore.stage_cache), or SRNET_STAGE_CACHE_DIR
"""

from __future__ import annotations

import logging
import shutil
import uuid

from persistence.settings import WorkerSettings
from srcore.files import try_exclusive_lock

log = logging.getLogger(__name__)

GB = 1_000_000_000


def remove_job_dir(worker_settings: WorkerSettings, job_id: uuid.UUID | str) -> bool:
    """Remove a job's work folder unless an attempt still holds it (its lock, taken without
    waiting) or SRNET_KEEP_WORK_DIR is set. True when removed (or already absent)."""
    if worker_settings.keep_work_dir:
        return False
    folder = worker_settings.job_dir(job_id)
    lock = folder.parent / f".{job_id}.lock"
    if not folder.exists():
        lock.unlink(missing_ok=True)
        return True
    with try_exclusive_lock(lock) as free:
        if not free:
            log.info("job %s: its work folder is still held by an attempt; kept", job_id)
            return False
        shutil.rmtree(folder, ignore_errors=True)
    lock.unlink(missing_ok=True)
    return True


def bound_stage_cache(worker_settings: WorkerSettings):
    """Evict least recently used stage cache entries until the cache holds at most
    SRNET_STAGE_CACHE_MAX_GB (0: no bound). Entries a build or a running job holds stay."""
    from srcore.stage_cache import StageCache

    limit_gb = worker_settings.stage_cache_max_gb
    root = worker_settings.stage_cache
    if not limit_gb or not root.is_dir():
        return None
    report = StageCache(root).evict(int(limit_gb * GB))
    if report.removed or report.freed_bytes:
        log.info("stage cache: %d entr%s evicted (%.2f GB freed), %.2f GB left of %.2f GB",
                 len(report.removed), "y" if len(report.removed) == 1 else "ies",
                 report.freed_bytes / GB, report.size_bytes / GB, limit_gb)  # fmt: skip
    if report.size_bytes > limit_gb * GB:
        log.warning("stage cache is %.2f GB, over SRNET_STAGE_CACHE_MAX_GB=%.2f: %d entr%s "
                    "in use", report.size_bytes / GB, limit_gb, len(report.kept_in_use),
                    "y" if len(report.kept_in_use) == 1 else "ies")  # fmt: skip
    return report
