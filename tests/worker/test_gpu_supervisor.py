"""`srnet worker --gpus all` as a real process tree: the supervisor, given a fake device list
(CUDA_VISIBLE_DEVICES=0,1 on a machine without GPUs), starts one real Celery worker per GPU
and a CPU-only one for the cpu queue; each child's environment is read from /proc. Stopping:
SIGTERM stops them all; a child that dies takes the set down with a non-zero status."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.worker.processes import TEST_WORKER_ENV, one_core, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"started (\w+) \(pid (\d+), CUDA_VISIBLE_DEVICES='([^']*)', queues (\S+)\)")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of ours still answers kill(0): reaped by the supervisor, it is gone.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


WORKER_GPUS_ALL = [sys.executable, "-m", "srnet", "worker", "--gpus", "all", "--hostname", "t@box",
                   "--stop-timeout", "60"]  # fmt: skip


class Supervisor:
    def __init__(self, tmp_path: Path, argv: list[str] = WORKER_GPUS_ALL, **extra_env: str):
        self.log_path = tmp_path / "supervisor.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SRNET_", "WORKER_"))}
        env.update(TEST_WORKER_ENV)
        env.update({
            "SRNET_HOME": str(tmp_path / "home"),  # SQLite database and embedded broker
            "SRNET_WORKER_PRELOAD": "false",  # no torch in the test's three workers
            "CUDA_VISIBLE_DEVICES": "0,1",  # the fake device list
            **extra_env,
        })  # fmt: skip
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=one_core,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> dict[str, tuple[int, str, str]]:
        return {m[1]: (int(m[2]), m[3], m[4]) for m in STARTED.finditer(self.log())}

    def wait_ready(self, count: int) -> dict[str, tuple[int, str, str]]:
        wait_for(lambda: self.log().count(" ready.") >= count or self.process.poll() is not None,
                 180, f"{count} workers ready")  # fmt: skip
        assert self.process.poll() is None, self.log()[-3000:]
        return self.children()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for pid, _, _ in self.children().values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    started = Supervisor(tmp_path)
    yield started
    started.kill()


def test_one_pinned_worker_per_gpu_and_a_cpu_only_one(supervisor):
    children = supervisor.wait_ready(3)
    assert {name: (cvd, queues) for name, (_, cvd, queues) in children.items()} == {
        "gpu0": ("0", "gpu"),
        "gpu1": ("1", "gpu"),
        "cpu": ("", "cpu"),
    }
    for name, (pid, cvd, queues) in children.items():
        env = environ_of(pid)  # what the child process really started with
        assert env["CUDA_VISIBLE_DEVICES"] == cvd, name
        assert env["SRNET_WORKER_QUEUES"] == queues and env["SRNET_WORKER_CONCURRENCY"] == "1"
        assert "SRNET_WORKER_GPUS" not in env  # a child does not supervise in turn
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[cmdline.index(b"--hostname") + 1] == f"{name}@box".encode()
        assert b"--gpus" not in cmdline
    for name in children:
        assert f"{name}@box ready." in supervisor.log()

    supervisor.process.send_signal(signal.SIGTERM)  # warm shutdown of every child
    assert supervisor.process.wait(timeout=90) == 0, supervisor.log()[-3000:]
    assert all(gone(pid) for pid, _, _ in children.values())


def test_a_child_that_dies_takes_the_others_down_with_a_failure_status(supervisor):
    children = supervisor.wait_ready(3)
    os.killpg(children["gpu1"][0], signal.SIGKILL)
    assert supervisor.process.wait(timeout=90) == 128 + signal.SIGKILL
    assert "gpu1 (pid" in supervisor.log() and "stopping the others" in supervisor.log()
    wait_for(lambda: all(gone(pid) for pid, _, _ in children.values()), 30, "children gone")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_srnet_serve_with_worker_gpus_set_supervises_one_worker_per_gpu(tmp_path):
    """SRNET_WORKER_GPUS is honoured by `srnet serve` as by `srnet worker`: not one Celery
    worker that would put every GPU job on the first GPU."""
    serve = Supervisor(
        tmp_path,
        [sys.executable, "-m", "srnet", "serve", "--port", str(free_port()),
         "--stop-timeout", "60"],
        SRNET_WORKER_GPUS="all",
    )  # fmt: skip
    try:
        children = serve.wait_ready(3)
        assert {name: cvd for name, (_, cvd, _) in children.items()} == {
            "gpu0": "0", "gpu1": "1", "cpu": "",
        }  # fmt: skip
        for name, (pid, _, _) in children.items():
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert cmdline[cmdline.index(b"--hostname") + 1].startswith(f"{name}@".encode())
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=90) == 0, serve.log()[-3000:]
        assert all(gone(pid) for pid, _, _ in children.values())
    finally:
        serve.kill()
