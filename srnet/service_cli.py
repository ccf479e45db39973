"""The service's `srnet` commands: serve, worker, reconcile, migrate, and keys (from
`srnet.keys_cli`). Loaded by `srnet.cli`.

Imports stay inside the commands: `srnet search` must not pay for Celery or uvicorn.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from srnet import keys_cli, owners_cli
from srnet.slurm import cli as slurm_cli

if TYPE_CHECKING:
    from persistence.settings import WorkerSettings


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the API, one worker and the reconciler on this machine",
        description="Migrate the database, make sure an API key exists (a new one is printed "
        "once), then run the API, one Celery worker and the reconciler until Ctrl-C. "
        "Configuration from the environment (SRNET_HOME, default ~/.local/share/srnet, holds "
        "every file of the defaults; SRNET_DATABASE_URL, SRNET_BROKER_URL, SRNET_ARTIFACT_STORE, "
        "SRNET_WORK_DIR override parts); the defaults need no service at all.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--no-worker", action="store_true", help="API and reconciler only")
    serve.add_argument("--no-reconciler", action="store_true")
    serve.add_argument("--stop-timeout", type=float, default=60.0,
                       help="seconds a process gets to stop before it is killed")  # fmt: skip
    serve.add_argument("--log-level", default="info",
                       choices=["debug", "info", "warning", "error"])  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run a Celery worker (one process per GPU with --gpus)",
        description="`celery -A worker.celery_app worker` with the service's settings: prefork "
        "pool, one fresh process per job, prefetch 1. SRNET_WORKER_QUEUES/--queues picks the "
        "queues. With --gpus (SRNET_WORKER_GPUS) it supervises one worker process per GPU, "
        "each pinned with CUDA_VISIBLE_DEVICES, plus a CPU-only one for the cpu queue.",
    )
    worker.add_argument("--queues", help="comma-separated: gpu, cpu (default: SRNET_WORKER_QUEUES)")
    worker.add_argument("--concurrency", type=int,
                        help="jobs at once (default 1; with --gpus: one per GPU)")  # fmt: skip
    worker.add_argument(
        "--gpus",
        help="'all' or GPU ids/UUIDs (0,1,3): one pinned worker "
        "process per GPU (default: SRNET_WORKER_GPUS; unset: one process)",
    )
    worker.add_argument(
        "--hostname",
        default="srnet@%h",
        help="Celery node name (with --gpus: gpu0@<host>, ..., cpu@<host>)",
    )
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--stop-timeout", type=float, default=600.0,
                        help="with --gpus: seconds the processes get to stop (a running job "
                        "checkpoints first) before they are killed")  # fmt: skip
    worker.add_argument(
        "--exit-when-idle",
        metavar="DURATION",
        help="exit after this long without a job (15m, 90s; Slurm workers)",
    )
    worker.add_argument("--end-margin", metavar="DURATION",
                        help="take no new job when less than this is left of the Slurm time "
                        "limit (SLURM_JOB_END_TIME or squeue), exit once idle")  # fmt: skip
    worker.set_defaults(func=cmd_worker)

    reconcile = sub.add_parser(
        "reconcile",
        help="re-send jobs the broker lost and recover jobs whose worker died",
        description="Safe to run on several hosts. Runs until stopped, or one pass with --once.",
    )
    reconcile.add_argument("--once", action="store_true", help="one pass, print what it did")
    reconcile.add_argument("--interval", type=float, help="seconds between passes")
    reconcile.add_argument(
        "--alive-file", help="touched after every pass (a container health check reads it)"
    )
    reconcile.set_defaults(func=cmd_reconcile)

    migrate = sub.add_parser(
        "migrate",
        help="bring the database schema up to date (alembic upgrade head)",
        description="Waits for the database to answer (a container starting beside it), then "
        "applies the migrations. Idempotent: the prestart step of every deployment.",
    )
    migrate.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the database to answer"
    )
    migrate.set_defaults(func=cmd_migrate)

    keys_cli.register(sub)
    slurm_cli.register(sub)
    owners_cli.register(sub)


def cmd_serve(args: argparse.Namespace) -> int:
    from srnet.serve import run_serve

    return run_serve(
        host=args.host,
        port=args.port,
        with_worker=not args.no_worker,
        with_reconciler=not args.no_reconciler,
        stop_timeout_s=args.stop_timeout,
        log_level=args.log_level,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from persistence.settings import Settings, WorkerSettings

    overrides: dict[str, object] = {}
    if args.queues:
        overrides["queues"] = args.queues
    if args.concurrency:
        overrides["concurrency"] = args.concurrency
    if args.gpus:
        overrides["gpus"] = args.gpus
    try:
        worker_settings = WorkerSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"srnet worker: {problems}", file=sys.stderr)
        return 2
    if worker_settings.gpus is not None:
        return _supervise_gpu_workers(args, worker_settings)

    from worker.celery_app import make_celery_app, worker_argv

    settings = Settings()
    print(f"srnet worker: {settings.locations()}; work {worker_settings.work}", file=sys.stderr)
    app = make_celery_app(settings, worker_settings)
    if args.exit_when_idle or args.end_margin:
        from srnet.slurm.lifetime import lifetime_from_options

        lifetime_from_options(app, args.exit_when_idle, args.end_margin)
    argv = worker_argv(worker_settings, loglevel=args.loglevel, hostname=args.hostname)
    app.worker_main(argv[2:])  # drop "-A worker.celery_app": the app is this one
    return 0


def _supervise_gpu_workers(args: argparse.Namespace, worker_settings: WorkerSettings) -> int:
    """`srnet worker --gpus`: one pinned worker process per GPU (worker.supervisor); no torch
    and no CUDA in this process."""
    from persistence.settings import Settings
    from worker.gpus import GpuAssignmentError, WorkerChild, plan_worker_children, probe_gpus
    from worker.supervisor import WorkerSupervisor, child_argv, declare_queues

    fields = worker_settings.model_fields_set
    asked = worker_settings.concurrency if "concurrency" in fields else None
    try:
        inventory = probe_gpus()
        children = plan_worker_children(
            inventory, worker_settings.gpus or (), worker_settings.queues, asked
        )
    except GpuAssignmentError as exc:
        print(f"srnet worker: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    print(f"srnet worker: {settings.locations()}; GPUs {inventory.describe()}; "
          f"{len(children)} worker processes", file=sys.stderr)  # fmt: skip
    declare_queues(settings, worker_settings)
    host = args.hostname.split("@", 1)[1] if "@" in args.hostname else args.hostname
    lifetime = []  # Slurm workers: each child ends by itself when idle
    if args.exit_when_idle:
        lifetime += ["--exit-when-idle", args.exit_when_idle]
    if args.end_margin:
        lifetime += ["--end-margin", args.end_margin]

    def argv_of(child: WorkerChild) -> list[str]:
        return [*child_argv(child, hostname=host, loglevel=args.loglevel), *lifetime]

    supervisor = WorkerSupervisor(children, argv_of=argv_of, stop_timeout_s=args.stop_timeout)
    return supervisor.run()


def cmd_reconcile(args: argparse.Namespace) -> int:
    import signal
    import threading

    from persistence.broker import CeleryJobSender
    from persistence.db import Database
    from persistence.dispatch import DispatchPolicy
    from persistence.settings import Settings, WorkerSettings
    from worker.reconciler import Reconciler

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    settings, worker_settings = Settings(), WorkerSettings()
    print(f"srnet reconcile: {settings.locations()}", file=sys.stderr)
    database = Database.from_settings(settings)
    reconciler = Reconciler(
        database,
        CeleryJobSender.from_settings(settings, name="srnet-reconciler"),
        stale_after_s=settings.heartbeat_stale_s,
        resend_after_s=worker_settings.reconcile_resend_after_s,
        work=worker_settings,  # failed jobs' work folders, where this host sees them
        policy=DispatchPolicy.from_settings(settings),
    )
    try:
        if args.once:
            report = reconciler.run_once()
            print(f"recovered {len(report.recovered)}, failed {len(report.failed)}, "
                  f"cancelled {len(report.cancelled)}, resent {len(report.resent)}, "
                  f"send errors {report.send_errors}")  # fmt: skip
            return 1 if report.send_errors else 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        alive = Path(args.alive_file) if args.alive_file else None
        reconciler.run_forever(stop, args.interval or worker_settings.reconcile_interval_s,
                               after_pass=alive.touch if alive else None)  # fmt: skip
        return 0
    finally:
        database.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    import time

    from sqlalchemy.exc import OperationalError

    from persistence.db import Database, upgrade_database
    from persistence.settings import Settings

    settings = Settings()
    print(f"srnet migrate: {settings.locations()}", file=sys.stderr)
    deadline = time.monotonic() + args.wait
    database = Database.from_settings(settings)
    try:
        while True:
            try:
                database.ping()
                break
            except OperationalError as exc:
                if time.monotonic() >= deadline:
                    print(f"srnet migrate: the database does not answer: {exc}", file=sys.stderr)
                    return 4
                time.sleep(1.0)
    finally:
        database.dispose()
    upgrade_database(settings.database_url)
    print("database schema is up to date")
    return 0
