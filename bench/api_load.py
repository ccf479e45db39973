"""Latency and requests/s of the SRNet API under concurrent clients, against a bare FastAPI app.

    .venv/bin/python bench/api_load.py [--concurrency 16] [--seconds 6] [--requests 20000]
                                       [--rounds 3] [--no-null-broker] [--quick]

Starts, side by side, three uvicorn servers on 127.0.0.1 (each `python -m uvicorn --factory`
in its own process, one worker, the same flags; they differ only in the app):
- bare:  a FastAPI app with `GET /bare` (a small JSON) and `POST /bare` (a small pydantic body
         echoed back), both plain `def` endpoints like ours, no middleware, no database;
- ours:  `api.main:create_app` with the embedded defaults in a temporary folder: SQLite
         (migrated with Alembic), the kombu SQLAlchemy broker `sqla+sqlite:///<tmp>/broker.db`
         (so `POST /jobs` really enqueues), a local artifact folder;
- ours without a broker: the same app and settings on its own SQLite file, with an enqueuer
         that does nothing, to show what the broker's share of `POST /jobs` is.

Then, per round (the phases alternate so that machine noise hits every side alike), it loads
each endpoint with `--concurrency` httpx.AsyncClient tasks (keep-alive, at most that many
connections) for `--seconds` seconds or `--requests` requests, whichever comes first. Each phase
begins with one untimed request per connection. It prints p50/p90/p99 latency, requests/s, the
server's and the client's CPU time per request (from /proc and process_time: steadier than
wall time on a shared machine) and `ratio:` lines = ours / bare. Every side is scored by its
best round (highest requests/s). Traffic goes to 127.0.0.1 only (trust_env off: no proxy).
The run stops by itself; servers are stopped when it ends or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
SPEC = {"task": "mnli", "pruning": {"sparsities": [0.5]}}
BARE_BODY = {"task": "mnli", "sparsity": 0.5}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
UVICORN_FLAGS = ["--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "2"]


# --- the apps the servers run (imported by uvicorn in the server processes) --------------------


class Body(BaseModel):
    """The bare POST's body (module level: the annotations are strings here)."""

    task: str
    sparsity: float


def bare_app():
    """The reference: FastAPI with nothing of ours."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    def bare_get() -> dict[str, object]:
        return {"id": "0b0e9c1e-0000-4000-8000-000000000000", "status": "queued", "attempt": 0}

    @app.post("/bare", status_code=201)
    def bare_post(body: Body) -> dict[str, object]:
        return {"task": body.task, "sparsity": body.sparsity, "status": "queued"}

    return app


class NullEnqueuer:
    """Takes every job and sends it nowhere."""

    def send(self, job_id, queue: str) -> None:
        return None

    def ping(self) -> None:
        return None


def ours_without_broker():
    """`create_app` on settings from the environment, with a do-nothing enqueuer."""
    from api.main import create_app

    return create_app(enqueuer=NullEnqueuer())


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu_s(self) -> float:
        """user + system CPU seconds of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=8)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(name: str, app: str, env: dict[str, str], folder: Path) -> Server:
    port = free_port()
    log = folder / f"{name}.log"
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", HOST]
    command += ["--port", str(port), *UVICORN_FLAGS]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=folder,  # no stray .env or ./var from the repository
            env={**os.environ, **env, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'bench'}"},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    return Server(name, process, port, log)


def wait_ready(server: Server, path: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    with httpx.Client(trust_env=False, timeout=2) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log.read_text()[-3000:]}")
            try:
                if client.get(server.url + path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} did not start:\n{server.log.read_text()}")
            time.sleep(0.1)


def prepare_database(folder: Path) -> tuple[str, str]:
    """Migrate a SQLite database, create an owner with an API key; (database URL, key)."""
    from persistence.db import Database, upgrade_database
    from persistence.keys import create_api_key

    database_url = f"sqlite:///{folder / 'srnet.db'}"
    upgrade_database(database_url)
    database = Database(database_url)
    try:
        with database.session() as session:
            created = create_api_key(session, "bench")
            session.commit()
    finally:
        database.dispose()
    return database_url, created.key


def ours_env(folder: Path, database_url: str, broker_url: str) -> dict[str, str]:
    return {
        "SRNET_ENVIRONMENT": "test",
        "SRNET_DATABASE_URL": database_url,
        "SRNET_BROKER_URL": broker_url,
        "SRNET_ARTIFACT_STORE": f"file://{folder / 'artifacts'}",
        "SRNET_DEFAULT_QUEUE": "gpu",
    }


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    server: str
    method: str
    path: str
    body: dict | None
    expect: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    label: str
    round: int
    latencies: list[float]
    errors: int
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    statuses: dict[str, int]

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def pct(self, p: int) -> float:
        """Latency percentile in milliseconds."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000

    def per_request_ms(self, cpu_s: float) -> float:
        done = self.ok + self.errors
        return cpu_s / done * 1000 if done else float("nan")


async def run_phase(
    phase: Phase, server: Server, round_: int, concurrency: int, seconds: float, limit: int
) -> Result:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(10.0)
    async with httpx.AsyncClient(
        base_url=server.url, limits=limits, timeout=timeout, trust_env=False
    ) as client:

        async def once() -> tuple[int | str, float]:
            start = time.perf_counter()
            try:
                response = await client.request(
                    phase.method, phase.path, json=phase.body, headers=phase.headers
                )
                await response.aread()
                status: int | str = response.status_code
            except httpx.HTTPError as error:
                status = type(error).__name__
            return status, time.perf_counter() - start

        # one untimed request per connection: connections open, code paths warm
        await asyncio.gather(*(once() for _ in range(concurrency)))

        deadline = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal issued, errors
            while issued < limit and time.perf_counter() < deadline:
                issued += 1
                status, elapsed = await once()
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == phase.expect:
                    latencies.append(elapsed)
                else:
                    errors += 1

        server_cpu = server.cpu_s()
        client_cpu = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        client_cpu = time.process_time() - client_cpu
        server_cpu = server.cpu_s() - server_cpu
    return Result(phase.label, round_, latencies, errors, wall, server_cpu, client_cpu, statuses)


def enqueue_check(folder: Path) -> str:
    """How many jobs the API made, how many it could not hand to the broker (left to the
    reconciler), and how many messages the broker holds."""
    with sqlite3.connect(folder / "srnet.db") as db:
        jobs, unsent = db.execute("SELECT count(*), sum(enqueued_at IS NULL) FROM jobs").fetchone()
    messages: object = "?"
    broker = folder / "broker.db"
    if broker.exists():
        with sqlite3.connect(broker) as db:
            messages = db.execute("SELECT count(*) FROM kombu_message").fetchone()[0]
    return f"jobs made {jobs}, not handed to the broker {unsent or 0}, broker messages {messages}"


def log_summary(server: Server) -> str:
    lines = server.log.read_text(errors="replace").splitlines()
    warnings = [line for line in lines if "WARNING" in line or "ERROR" in line]
    return f"{server.name}: {len(lines)} log lines, {len(warnings)} warnings/errors" + (
        f"; first: {warnings[0][:160]}" if warnings else ""
    )


# --- report -------------------------------------------------------------------------------------


def row(result: Result) -> str:
    return (
        f"| {result.label} | {result.round} | {result.ok} | {result.errors} | "
        f"{result.rps:,.0f} | {result.pct(50):.1f} | {result.pct(90):.1f} | "
        f"{result.pct(99):.1f} | {result.per_request_ms(result.server_cpu_s):.2f} | "
        f"{result.per_request_ms(result.client_cpu_s):.2f} |"
    )


def ratio_line(ours: Result, bare: Result) -> str:
    return (
        f"ratio: {ours.rps / bare.rps:.3f}  ({ours.label} / {bare.label} requests/s: "
        f"{ours.rps:,.0f} / {bare.rps:,.0f}); latency ours/bare p50 "
        f"x{ours.pct(50) / bare.pct(50):.2f}, p90 x{ours.pct(90) / bare.pct(90):.2f}, "
        f"p99 x{ours.pct(99) / bare.pct(99):.2f}; server CPU per request "
        f"x{ours.per_request_ms(ours.server_cpu_s) / bare.per_request_ms(bare.server_cpu_s):.2f}"
    )


def machine() -> str:
    import fastapi
    import starlette
    import uvicorn

    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    try:
        import httptools  # noqa: F401

        http = "httptools"
    except ImportError:
        http = "h11"
    return (
        f"nproc {os.cpu_count()} ({len(os.sched_getaffinity(0))} usable), {model}, "
        f"Python {sys.version.split()[0]}, uvicorn {uvicorn.__version__} ({loop}, {http}), "
        f"fastapi {fastapi.__version__}, starlette {starlette.__version__}, "
        f"httpx {httpx.__version__}; load average {load}"
    )


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0, help="per phase and round")
    parser.add_argument("--requests", type=int, default=20000, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-null-broker", action="store_true", help="skip POST /jobs without a broker"
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s (a smoke run)")
    parser.add_argument("--budget-s", type=float, default=170.0, help="hard stop for phases")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 2.0
    started = time.monotonic()
    print(machine(), flush=True)

    servers: dict[str, Server] = {}
    with tempfile.TemporaryDirectory(prefix="srnet-bench-") as tmp:
        folder = Path(tmp)
        try:
            (folder / "ours").mkdir()
            db_url, key = prepare_database(folder / "ours")
            broker_url = f"sqla+sqlite:///{folder / 'ours' / 'broker.db'}"
            servers["bare"] = start_server("bare", "api_load:bare_app", {}, folder)
            servers["ours"] = start_server(
                "ours",
                "api.main:create_app",
                ours_env(folder / "ours", db_url, broker_url),
                folder,
            )
            auth = {"Authorization": f"Bearer {key}"}
            if not args.no_null_broker:
                (folder / "null").mkdir()
                null_db, null_key = prepare_database(folder / "null")
                never = f"sqla+sqlite:///{folder / 'null' / 'unused-broker.db'}"
                servers["null"] = start_server(
                    "null",
                    "api_load:ours_without_broker",
                    ours_env(folder / "null", null_db, never),
                    folder,
                )
            wait_ready(servers["bare"], "/bare")
            wait_ready(servers["ours"], "/healthz")
            if "null" in servers:
                wait_ready(servers["null"], "/healthz")

            # a job to read, made through the API (this also proves the broker takes messages)
            with httpx.Client(base_url=servers["ours"].url, trust_env=False, timeout=10) as c:
                made = c.post("/jobs", json=SPEC, headers=auth)
                made.raise_for_status()
                job_id = made.json()["id"]
            print(f"servers up in {time.monotonic() - started:.1f} s; job {job_id}", flush=True)

            phases = [
                Phase("GET /bare", "bare", "GET", "/bare", None, 200),
                Phase("GET /jobs/{id}", "ours", "GET", f"/jobs/{job_id}", None, 200, auth),
                Phase("POST /bare", "bare", "POST", "/bare", BARE_BODY, 201),
                Phase("POST /jobs (broker)", "ours", "POST", "/jobs", SPEC, 201, auth),
            ]
            if "null" in servers:
                null_auth = {"Authorization": f"Bearer {null_key}"}
                phases.append(
                    Phase("POST /jobs (no broker)", "null", "POST", "/jobs", SPEC, 201, null_auth)
                )

            results: list[Result] = []
            header = (
                "| endpoint | round | ok | errors | req/s | p50 ms | p90 ms | p99 ms "
                "| server CPU ms/req | client CPU ms/req |\n" + "|---" * 10 + "|"
            )
            print(header, flush=True)
            for round_ in range(1, args.rounds + 1):
                order = phases if round_ % 2 else list(reversed(phases))
                for phase in order:
                    if time.monotonic() - started > args.budget_s:
                        print(f"(budget of {args.budget_s:.0f} s spent: {phase.label} skipped)")
                        continue
                    result = asyncio.run(
                        run_phase(
                            phase,
                            servers[phase.server],
                            round_,
                            args.concurrency,
                            args.seconds,
                            args.requests,
                        )
                    )
                    results.append(result)
                    print(row(result), flush=True)
                    odd = {k: v for k, v in result.statuses.items() if k != str(phase.expect)}
                    if odd:
                        print(f"  unexpected answers: {odd}", flush=True)

            best: dict[str, Result] = {}
            for result in results:
                if result.label not in best or result.rps > best[result.label].rps:
                    best[result.label] = result
            print("\nbest round of each:")
            for result in best.values():
                print(row(result))
            print()
            pairs = [
                ("GET /jobs/{id}", "GET /bare"),
                ("POST /jobs (broker)", "POST /bare"),
                ("POST /jobs (broker)", "GET /bare"),
                ("POST /jobs (no broker)", "POST /bare"),
                ("POST /bare", "GET /bare"),
            ]
            for ours_label, bare_label in pairs:
                if ours_label in best and bare_label in best and best[bare_label].ok > 1:
                    print(ratio_line(best[ours_label], best[bare_label]))
            print(f"\nours (broker): {enqueue_check(folder / 'ours')}")
            for server in servers.values():
                print(log_summary(server))
            print(
                f"\nconcurrency {args.concurrency}, {args.seconds:g} s or {args.requests} "
                f"requests per phase, {args.rounds} round(s); "
                f"total {time.monotonic() - started:.0f} s; load average now "
                + " ".join(f"{x:.2f}" for x in os.getloadavg())
            )
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()
