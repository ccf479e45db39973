"""`srnet slurm workers | autoscale | status`: SRNet workers as Slurm jobs.

- `workers --count N`: one sbatch job array of N worker tasks (`--print`: the script instead);
- `autoscale`: keep pending + running worker tasks matched to the jobs that need one;
- `status`: the worker tasks in squeue, the jobs waiting, the autoscaler's last decisions.

Each option falls back to its `SRNET_SLURM_*` setting (srnet/slurm/settings.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT, EXIT_SLURM = 2, 4


def _task_options(parser: argparse.ArgumentParser) -> None:
    """What each worker task asks Slurm for (defaults: the SRNET_SLURM_* settings)."""
    add = parser.add_argument
    add("--partition", help="Slurm partition (SRNET_SLURM_PARTITION)")
    add("--time", help="time limit per worker task, e.g. 12:00:00 (SRNET_SLURM_TIME)")
    add("--gpus-per-worker", type=int, help="0 or 1: one worker per GPU (default 1)")
    add("--cpus-per-worker", type=int, help="CPUs per worker task (default 4)")
    add("--mem", help="memory per worker task, e.g. 32G")
    add("--account", help="Slurm account")
    add("--qos", help="Slurm QoS")
    add("--extra", action="append", help="a whole '#SBATCH ...' line (repeatable)")
    add(
        "--setup",
        action="append",
        help="a shell line run before the worker, e.g. 'module load cuda' (repeatable)",
    )
    add("--queues", help="queues the workers consume and the autoscaler counts (default gpu)")
    add("--exit-when-idle", help="a worker exits after this long without a job (default 15m)")
    add(
        "--end-margin",
        help="a worker takes no new job when less than this is left of its time limit (30m)",
    )
    add("--job-name", help="Slurm job name of the workers (default srnet-worker)")
    add("--python", help="interpreter on the compute nodes (default: this one)")
    add("--env-file", help="a 0600 file of settings the job sources (SRNET_SLURM_ENV_FILE)")
    add("--log-dir", help="the workers' Slurm logs (default SRNET_HOME/slurm/logs)")
    add("--state-dir", help="the autoscaler's decision log (default SRNET_HOME/slurm)")


def register(sub: argparse._SubParsersAction) -> None:
    slurm = sub.add_parser(
        "slurm",
        help="run workers as Slurm jobs: submit, autoscale, status",
        description="SRNet workers as Slurm job arrays, against the service's database, broker "
        "and artifact store. Settings reach the jobs through the environment (or a 0600 env "
        "file), never on a command line or in the script.",
    )
    commands = slurm.add_subparsers(dest="slurm_command", required=True)

    workers = commands.add_parser("workers", help="submit a job array of N workers")
    workers.add_argument("--count", type=int, default=1, help="workers (array tasks)")
    workers.add_argument(
        "--print",
        action="store_true",
        dest="print_script",
        help="write the sbatch script to stdout instead of submitting it",
    )
    workers.add_argument(
        "--write-env-file",
        metavar="FILE",
        help="write the service's settings to FILE (mode 0600) and have the "
        "script source it (for submitting by hand)",
    )
    _task_options(workers)
    workers.set_defaults(func=cmd_workers)

    autoscale = commands.add_parser(
        "autoscale",
        help="keep worker tasks matched to the jobs waiting",
        description="Each pass: jobs that need a worker (queued, running, cancelling) against "
        "pending + running worker tasks; submit the missing ones, cancel pending extras (a "
        "running worker exits by itself when idle). Decisions go to the log and to "
        "STATE_DIR/decisions.jsonl.",
    )
    autoscale.add_argument("--min", type=int, dest="min_workers", help="default 0")
    autoscale.add_argument("--max", type=int, dest="max_workers", help="default 4")
    autoscale.add_argument(
        "--interval", type=float, dest="interval_s", help="seconds between passes (default 30)"
    )
    autoscale.add_argument("--once", action="store_true", help="one pass, print the decision")
    _task_options(autoscale)
    autoscale.set_defaults(func=cmd_autoscale)

    status = commands.add_parser("status", help="worker tasks, waiting jobs, last decisions")
    status.add_argument("--decisions", type=int, default=10, help="how many decisions to show")
    status.add_argument("--job-name", help="Slurm job name of the workers")
    status.add_argument("--queues")
    status.add_argument("--state-dir")
    status.set_defaults(func=cmd_status)


_SETTING_OPTIONS = (
    "partition",
    "time",
    "gpus_per_worker",
    "cpus_per_worker",
    "mem",
    "account",
    "qos",
    "extra",
    "setup",
    "queues",
    "exit_when_idle",
    "end_margin",
    "job_name",
    "python",
    "env_file",
    "log_dir",
    "state_dir",
    "min_workers",
    "max_workers",
    "interval_s",
)


def _fail(message: str, code: int) -> int:
    print(f"srnet slurm: {message}", file=sys.stderr)
    return code


def _option_of(loc: tuple) -> str:
    """The command-line option of a settings field (`gpus_per_worker` -> `--gpus-per-worker`)."""
    names = {"min_workers": "min", "max_workers": "max", "interval_s": "interval"}
    if not loc:
        return "settings"
    name = str(loc[0])
    return "--" + names.get(name, name).replace("_", "-")


def _slurm_settings(args: argparse.Namespace) -> Any:
    """SlurmSettings from the environment with the command line over it (SystemExit 2 naming
    the option on bad input)."""
    from pydantic import ValidationError

    from srnet.slurm.settings import SlurmSettings

    overrides = {
        name: getattr(args, name)
        for name in _SETTING_OPTIONS
        if getattr(args, name, None) is not None
    }
    try:
        return SlurmSettings(**overrides)
    except ValidationError as exc:
        lines = [f"  {_option_of(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]  # fmt: skip
        raise SystemExit(_fail("invalid settings:\n" + "\n".join(lines), EXIT_BAD_INPUT)) from None


def _folders(slurm: Any) -> tuple[Path, Path]:
    from persistence.settings import SharedSettings

    state = slurm.state_dir or SharedSettings().home / "slurm"
    return state, slurm.log_dir or state / "logs"


def cmd_workers(args: argparse.Namespace) -> int:
    import os

    from persistence.settings import Settings
    from srnet.slurm.batch import SlurmSetupError, WorkerBatch, service_environment, write_env_file
    from srnet.slurm.commands import SlurmCommandError, SlurmCommands

    slurm = _slurm_settings(args)
    if args.write_env_file:
        path = Path(args.write_env_file).absolute()
        try:
            write_env_file(path, service_environment(Settings()))
        except SlurmSetupError as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
        print(f"srnet slurm: settings written to {path} (mode 0600)", file=sys.stderr)
        slurm = slurm.model_copy(update={"env_file": path})
    _, log_dir = _folders(slurm)
    try:
        batch = WorkerBatch(slurm, args.count, log_dir.absolute())
    except SlurmSetupError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    # Slurm opens the --output file before the script runs: a missing folder fails the job
    # with no log at all (also for a script printed to be submitted by hand).
    log_dir.mkdir(parents=True, exist_ok=True)
    if args.print_script:
        sys.stdout.write(batch.script())
        return 0
    env = dict(os.environ)
    if slurm.env_file is None:
        try:
            env.update(service_environment(Settings()))
        except SlurmSetupError as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
    try:
        job_id = SlurmCommands(slurm.job_name).submit(batch.script(), env)
    except SlurmCommandError as exc:
        return _fail(str(exc), EXIT_SLURM)
    print(job_id)
    print(
        f"srnet slurm: {args.count} worker(s) submitted as job array {job_id}; logs in {log_dir}",
        file=sys.stderr,
    )
    return 0


def cmd_autoscale(args: argparse.Namespace) -> int:
    import signal
    import threading

    from persistence.db import Database
    from persistence.dispatch import DispatchPolicy
    from persistence.settings import Settings
    from srnet.slurm.autoscale import Autoscaler, DecisionLog
    from srnet.slurm.batch import SlurmSetupError, job_environment
    from srnet.slurm.commands import SlurmCommands

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    slurm = _slurm_settings(args)
    settings = Settings()
    try:
        env = job_environment(settings)
    except SlurmSetupError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    state_dir, log_dir = _folders(slurm)
    print(
        f"srnet slurm autoscale: {settings.locations()}; {slurm.min_workers}..{slurm.max_workers} "
        f"workers named {slurm.job_name}; decisions in {state_dir}",
        file=sys.stderr,
    )
    database = Database.from_settings(settings)
    autoscaler = Autoscaler(
        database,
        SlurmCommands(slurm.job_name),
        slurm,
        job_env=env,
        log_dir=log_dir.absolute(),
        decisions=DecisionLog(state_dir),
        policy=DispatchPolicy.from_settings(settings),
    )
    try:
        if args.once:
            decision = autoscaler.run_once()
            print(
                f"{decision.action} {decision.count}: demand {decision.demand}, pending "
                f"{decision.pending}, running {decision.running}, wanted {decision.wanted}"
                + (f"; {decision.error}" if decision.error else "")
            )
            return EXIT_SLURM if decision.error else 0
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        autoscaler.run_forever(stop, slurm.interval_s)
        return 0
    finally:
        database.dispose()


def cmd_status(args: argparse.Namespace) -> int:
    from persistence.db import Database
    from persistence.dispatch import DispatchPolicy
    from persistence.settings import Settings
    from srnet.slurm.autoscale import DecisionLog, count_jobs
    from srnet.slurm.commands import SlurmCommandError, SlurmCommands

    slurm = _slurm_settings(args)
    state_dir, _ = _folders(slurm)
    settings = Settings()
    database = Database.from_settings(settings)
    try:
        queued, active = count_jobs(database, slurm.queues, DispatchPolicy.from_settings(settings))
    finally:
        database.dispose()
    print(f"jobs in {','.join(slurm.queues)}: {queued} queued, {active} running")
    code = 0
    try:
        tasks = SlurmCommands(slurm.job_name).tasks()
    except SlurmCommandError as exc:
        print(f"worker tasks: unknown ({exc})")
        code = EXIT_SLURM
    else:
        pending = sum(t.pending for t in tasks)
        running = sum(t.running for t in tasks)
        print(f"worker tasks ({slurm.job_name}): {pending} pending, {running} running")
        for t in tasks:
            where = t.node if t.running else t.reason
            print(f"  {t.job_id:<14} {t.state:<11} {where:<20} started {t.started} ends {t.ends}")
    decisions = DecisionLog(state_dir).last(args.decisions)
    print(f"last {len(decisions)} autoscaler decision(s) ({state_dir}):")
    for d in decisions:
        what = f"{d.action} {d.count}" if d.count else d.action
        ids = f" {','.join(d.job_ids)}" if d.job_ids else ""
        error = f" error: {d.error}" if d.error else ""
        print(
            f"  {d.at} {what:<9} demand {d.demand} pending {d.pending} running {d.running} "
            f"wanted {d.wanted}{ids}{error}"
        )
    return code
