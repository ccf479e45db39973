"""Against a real uvicorn process: an error leaves the keep-alive connection usable, and
SIGTERM ends open event streams (of a running job) well within the graceful timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from persistence.db import Database, upgrade_database
from persistence.keys import create_api_key
from persistence.repositories import JobRepository
from srcore.jobspec.spec import JobSpec

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    url = f"sqlite:///{tmp_path / 'srnet.db'}"
    upgrade_database(url)
    database = Database(url)
    with database.session() as session:
        created = create_api_key(session, "lab-live")
        job = JobRepository(session).create(
            owner_id=created.owner.id,
            spec=JobSpec().model_dump(mode="json"),
            spec_hash="0" * 64,
            queue="gpu",
            max_attempts=3,
        )
        session.commit()
        key, job_id = created.key, job.id
    with database.session() as session:  # a running job: its stream would follow it forever
        JobRepository(session).claim(job_id, worker_id="w1")
        session.commit()
    port = _free_port()
    env = {
        **os.environ,
        "SRNET_ENVIRONMENT": "test",
        "SRNET_HOME": str(tmp_path / "home"),
        "SRNET_DATABASE_URL": url,
        "SRNET_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "SRNET_ARTIFACT_STORE": f"file://{tmp_path / 'artifacts'}",
        "SRNET_SSE_POLL_INTERVAL_S": "0.5",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--timeout-graceful-shutdown", "30"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(process.stdout.read().decode()) from None
            time.sleep(0.2)
    yield process, port, key, job_id
    if process.poll() is None:
        process.kill()
    process.wait(10)
    database.dispose()


def _request(sock: socket.socket, method: str, path: str, key: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    header, _, rest = data.partition(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in header.split(b"\r\n")[1:])
    length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
    while len(rest) < length:
        rest += sock.recv(65536)
    return header.split(b"\r\n")[0] + b"\n" + rest


def test_errors_leave_the_keep_alive_connection_usable(server):
    _process, port, key, job_id = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for body in (
            b'{"training": {"grad_clip": NaN}}',
            b'{"training": {"max_steps": 1e309}}',
            b'{"name": "a\\u0000b"}',
            b'{"name": "\\ud800"}',
            b"{not json",
        ):
            answer = _request(sock, "POST", "/jobs", key, body)
            assert answer.startswith(b"HTTP/1.1 422"), answer
            json.loads(answer.split(b"\n", 1)[1])  # a JSON error body
        answer = _request(sock, "GET", f"/jobs/{job_id}/events?after={2**63}", key)
        assert answer.startswith(b"HTTP/1.1 422"), answer
        assert _request(sock, "GET", "/jobs", key).startswith(b"HTTP/1.1 200")  # same socket


def test_sigterm_ends_event_streams_within_the_graceful_timeout(server):
    process, port, key, job_id = server
    url = f"http://127.0.0.1:{port}/jobs/{job_id}/events/stream"
    with httpx.stream("GET", url, headers={"X-API-Key": key}, timeout=60) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        seen = list(lines)  # the stream ends (the server closes it)
    assert "event: end" in seen and 'data: {"reason":"shutdown"}' in seen, seen
    process.wait(timeout=15)
    assert time.monotonic() - started < 10
    # uvicorn re-raises the signal it handled once it has shut down cleanly.
    assert process.returncode in (0, -signal.SIGTERM)
