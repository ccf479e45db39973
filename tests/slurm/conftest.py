"""The real Slurm cluster of the tests: the one `scripts/slurm-test-cluster start` runs on
loopback (slurmctld + slurmd + munged, its slurm.conf under SRNET_SLURM_TEST_DIR, default
/tmp/srnet-slurm-test). Tests that need it skip, saying why, where it does not answer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.persistence.fixtures import *  # noqa: F403

SLURM_DIR = Path(os.environ.get("SRNET_SLURM_TEST_DIR", "/tmp/srnet-slurm-test"))
SLURM_CONF = SLURM_DIR / "slurm.conf"


def slurm_unavailable() -> str | None:
    """Why the test cluster cannot be used here, or None."""
    for command in ("sbatch", "squeue", "scancel", "sinfo"):
        if shutil.which(command) is None:
            return (f"{command} is not installed (scripts/slurm-test-cluster start installs "
                    "slurm-wlm where it runs as root)")  # fmt: skip
    if not SLURM_CONF.is_file():
        return f"no test cluster: {SLURM_CONF} is missing (run scripts/slurm-test-cluster start)"
    env = {**os.environ, "SLURM_CONF": str(SLURM_CONF)}
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                              text=True, timeout=10)  # fmt: skip
    except subprocess.TimeoutExpired:
        return "the test cluster's slurmctld does not answer (sinfo timed out)"
    states = done.stdout.split()
    if done.returncode != 0:
        return f"the test cluster does not answer: {done.stderr.strip()[:300]}"
    if not any(s.rstrip("*~#") in ("idle", "mix", "alloc") for s in states):
        return f"the test cluster's node is not usable (sinfo: {' '.join(states) or 'no node'})"
    return None


@pytest.fixture
def slurm_cluster(monkeypatch: pytest.MonkeyPatch) -> Path:
    """SLURM_CONF of the running test cluster, set for this process and its children."""
    reason = slurm_unavailable()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("SLURM_CONF", str(SLURM_CONF))
    return SLURM_CONF
