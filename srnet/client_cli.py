"""`srnet submit | list | status | watch | cancel | download | push | tag | note | runs`: the
service from a terminal.

The service URL and API key come from `--url` / `--key` or $SRNET_URL / $SRNET_API_KEY (prefer
the variable: a flag shows in the process list). Exit codes, as for every `srnet` command:
0 ok, 1 the job failed (or the service refused the operation), 2 bad input (invalid spec,
unknown job, missing or wrong API key), 3 cancelled or interrupted, 4 service unreachable.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from srnet.client import (
    DEFAULT_URL,
    ApiError,
    ArtifactNotAvailable,
    ChecksumMismatch,
    Conflict,
    Event,
    InvalidSpec,
    Job,
    Metrics,
    NotFound,
    NotTheService,
    SRNetClient,
    TargetExists,
    Unauthorized,
    Unreachable,
    ValidationFailed,
)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
# pruning.structure's values (the client does not import srcore; the service checks them too)
STRUCTURES = ("unstructured", "ffn_neurons", "ffn_neurons+heads")
_EXIT_OF_STATUS = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "cancelled": EXIT_CANCELLED}


def register(sub: Any) -> None:
    """Add the client commands to `srnet`'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", help=f"service URL (default: $SRNET_URL, else {DEFAULT_URL})", default=None
    )
    common.add_argument(
        "--key", help="API key (default: $SRNET_API_KEY; the variable keeps it out of `ps`)"
    )
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    p = sub.add_parser("submit", parents=[common], help="submit a job spec to the service")
    p.add_argument("spec", help="job spec JSON file")
    p.add_argument("--queue", choices=("gpu", "cpu"), help="worker queue (default: service's)")
    p.add_argument("--idempotency-key", help="submitting again with it gives the same job")
    p.add_argument("--watch", action="store_true", help="then watch it until it finishes")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("list", parents=[common], help="list your jobs, newest first")
    p.add_argument("--status", action="append", choices=STATUSES, help="only these (repeat)")
    p.add_argument("--limit", type=int, default=20, help="jobs to show (default 20)")
    p.add_argument("--all", action="store_true", help="every job, page after page")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("status", parents=[common], help="a job's status, stage and progress")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("watch", parents=[common], help="follow a job live, then its metrics")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--poll", action="store_true", help="poll instead of the event stream")
    p.add_argument("--interval", type=float, default=2.0, help="poll interval in seconds")
    p.add_argument("--wait-timeout", type=float, help="give up after this many seconds")
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("cancel", parents=[common], help="cancel a queued or running job")
    p.add_argument("job_id", metavar="ID")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser(
        "download", parents=[common], help="download artifacts (sha256-checked, resumable)"
    )
    p.add_argument("job_id", metavar="ID")
    p.add_argument(
        "--what",
        choices=("checkpoint", "mask", "report", "plot", "onnx", "all"),
        default="checkpoint",
        help="which artifacts (default checkpoint; report = metrics JSON and plot; onnx = the "
        "ONNX models of a job with export.onnx)",
    )
    p.add_argument("--out", default=".", help="folder to write into (default: here)")
    p.add_argument("--seed", type=int, help="only this seed")
    p.add_argument("--sparsity", type=_sparsity_arg, help="only this sparsity (0.7, 70 or 70%%)")
    p.add_argument(
        "--extract", action="store_true", help="unpack checkpoint archives into OUT/<name>/"
    )
    p.add_argument(
        "--force", action="store_true", help="replace a different file or folder already there"
    )
    p.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("tag", parents=[common], help="add tags to a job (or --remove, --clear)")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("tags", metavar="TAG", nargs="*", help="tags: letters, digits, _ . : + / -")
    p.add_argument(
        "--remove", action="append", default=[], metavar="TAG", help="remove this tag (repeat)"
    )
    p.add_argument("--clear", action="store_true", help="remove every tag")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("note", parents=[common], help="write a free-text note on a job")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("text", metavar="TEXT", help='the note ("-": read it from stdin; "": clear)')
    p.set_defaults(func=cmd_note)

    p = sub.add_parser(
        "runs",
        parents=[common],
        help="the runs table across your jobs and studies (a row per job, stage and sparsity)",
    )
    shape = p.add_mutually_exclusive_group()
    shape.add_argument("--csv", action="store_true", help="print CSV")
    shape.add_argument("--json", action="store_true", help="print the rows as a JSON list")
    p.add_argument("--loss", help="only this loss (none, poe, reweight, conf_reg)")
    p.add_argument("--method", help="only this pruning method")
    p.add_argument("--scenario", help="only this scenario")
    p.add_argument(
        "--structure",
        choices=STRUCTURES,
        help="only this pruning.structure (unstructured, ffn_neurons, ffn_neurons+heads)",
    )
    p.add_argument(
        "--sparsity", type=_sparsity_or_dense, help="only this sparsity (0.5, 50%%; 0: dense)"
    )
    p.add_argument("--task", help="only this task")
    p.add_argument("--tag", action="append", help="only jobs with this tag (repeat: all of them)")
    p.add_argument("--study", metavar="STUDY_ID", help="only this study's jobs")
    p.add_argument("--stage", choices=("dense", "search", "retrain"), help="only this stage")
    p.add_argument(
        "--sort", action="append", help="sort key, - for descending (-id_metric, ood.hans; repeat)"
    )
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser(
        "push",
        parents=[common],
        help="download a finished job's checkpoint and push it to the Hugging Face hub",
    )
    p.add_argument("job_id", metavar="ID")
    p.add_argument("repo_id", metavar="REPO", help="hub repository, e.g. my-lab/mnli-poe-50")
    p.add_argument("--seed", type=int, help="the seed (default: the only one)")
    p.add_argument("--sparsity", type=_sparsity_arg, help="the sparsity (default: the only one)")
    p.add_argument("--out", default=".", help="where the checkpoint is downloaded first")
    p.add_argument("--hf-token", help="default: $HF_TOKEN or the `huggingface-cli login` token")
    p.add_argument("--public", action="store_true", help="a public repository (default private)")
    p.set_defaults(func=cmd_push)


def _sparsity_arg(text: str) -> float:
    """0.7, 70 and 70% all mean 70 % (the pages show percentages)."""
    raw = text.strip()
    percent = raw.endswith("%")
    try:
        value = float(raw.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a sparsity: {text!r} (e.g. 0.7 or 70%)") from None
    if percent or value > 1:
        value /= 100
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a sparsity is between 0 and 100%, not {text!r}")
    return value


def _sparsity_or_dense(text: str) -> float:
    """A sparsity as --sparsity takes it, or 0 for the dense models."""
    return 0.0 if text.strip().rstrip("%") in ("0", "0.0") else _sparsity_arg(text)


# --- running a command -------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> SRNetClient:
    key = args.key if args.key is not None else os.environ.get("SRNET_API_KEY")
    if not key:
        raise _Fail("no API key: set SRNET_API_KEY or pass --key", EXIT_BAD_INPUT)
    url = args.url or os.environ.get("SRNET_URL") or DEFAULT_URL
    if not re.match(r"^https?://[^/\s]", url):
        example = f"http://{url.split('://')[-1] or '127.0.0.1:8000'}"
        raise _Fail(f"not a service URL: {url!r} (give its scheme, e.g. {example})",
                    EXIT_BAD_INPUT)  # fmt: skip
    return SRNetClient(url, key, timeout=args.timeout)


_FULL_ID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                      r"[0-9a-fA-F]{12}$")  # fmt: skip


def _job_id(client: SRNetClient, given: str) -> str:
    """A full job id, or the one job whose id starts with `given` (the short ids file names
    and tables show; at least 4 hex digits, dashes ignored)."""
    text = given.strip()
    if _FULL_ID.match(text):
        return text
    prefix = text.replace("-", "").lower()
    if len(prefix) < 4 or not re.fullmatch(r"[0-9a-f]+", prefix):
        raise _Fail(f"not a job id: {given!r} (a full id, or its first 4+ hex digits)",
                    EXIT_BAD_INPUT)  # fmt: skip
    matches = [j for j in client.iterate() if j.id.replace("-", "").startswith(prefix)]
    if not matches:
        raise _Fail(f"no job of yours has an id starting with {given!r} (srnet list shows them)",
                    EXIT_BAD_INPUT)  # fmt: skip
    if len(matches) > 1:
        listed = ", ".join(f"{j.id} ({j.name or 'unnamed'})" for j in matches[:5])
        raise _Fail(f"{given!r} matches {len(matches)} jobs: {listed}; give more of the id",
                    EXIT_BAD_INPUT)  # fmt: skip
    return matches[0].id


class _Fail(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Client errors become a message on stderr and the documented exit code."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except _Fail as exc:
            return _error(str(exc), exc.code)
        except ValidationFailed as exc:
            lines = [f"  {e.field or '(spec)'}: {e.message}" for e in exc.errors]
            return _error(
                "the service refused the request (422):\n" + "\n".join(lines), EXIT_BAD_INPUT
            )
        except (InvalidSpec, NotTheService) as exc:
            return _error(str(exc), EXIT_BAD_INPUT)
        except Unauthorized as exc:
            return _error(
                f"unauthorized: {exc.detail} (check SRNET_API_KEY / --key)", EXIT_BAD_INPUT
            )
        except NotFound as exc:
            return _error(_not_found_text(exc, args), EXIT_BAD_INPUT)
        except Unreachable as exc:
            return _error(str(exc), EXIT_UNREACHABLE)
        except Conflict as exc:
            return _error(exc.detail, EXIT_FAILED)
        except (ApiError, ChecksumMismatch, ArtifactNotAvailable, TargetExists) as exc:
            return _error(str(exc), EXIT_FAILED)
        except KeyboardInterrupt:
            return _error("interrupted", EXIT_CANCELLED)

    return run


def _not_found_text(exc: NotFound, args: argparse.Namespace) -> str:
    job = getattr(args, "job_id", None)
    if exc.type == "job_not_found":
        return f"no job {job} for this API key (srnet list shows yours)"
    if exc.type == "study_not_found":
        study = getattr(args, "study_id", None)
        return f"no study {study} for this API key (srnet study list shows yours)"
    if exc.type == "artifact_not_found":
        return f"job {job} has no such artifact (srnet download {job} --what all lists them)"
    url = args.url or os.environ.get("SRNET_URL") or DEFAULT_URL
    return (f"{url} answered 404 for this request: is it the SRNet service's base URL "
            "(--url / SRNET_URL, e.g. http://127.0.0.1:8000)?")  # fmt: skip


def _error(message: str, code: int) -> int:
    print(f"srnet: {message}", file=sys.stderr)
    return code


# --- commands ----------------------------------------------------------------------------------


@_guarded
def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.spec, idempotency_key=args.idempotency_key, queue=args.queue)
        if args.json:
            print(json.dumps(job.raw, indent=1))
        else:
            print(job.id)  # alone on stdout: ID=$(srnet submit spec.json)
            print(
                f"submitted {job.name or 'job'} ({job.status}, queue {job.queue})", file=sys.stderr
            )
        if args.watch:
            return _watch(client, job.id, stream=True, interval=2.0, timeout=None)
    return EXIT_OK


@_guarded
def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.all:
            jobs = list(client.iterate(args.status))
            count = len(jobs)
        else:
            page = client.list(args.status, limit=max(1, min(args.limit, 100)))
            jobs, count = page.jobs, page.count
    if args.json:
        for job in jobs:
            print(json.dumps(job.raw))
        return EXIT_OK
    rows = [
        [
            job.id,
            _clip_middle(job.name or "", NAME_WIDTH),
            job.status,
            job.stage or "",
            _job_percent(job),
            _duration(job.job_eta_s) if job.status == "running" else "",
            job.created_at.strftime("%Y-%m-%d %H:%M") if job.created_at else "",
        ]
        for job in jobs
    ]
    print(_table(["ID", "NAME", "STATUS", "STAGE", "PROGRESS", "ETA", "CREATED (UTC)"], rows))
    if count > len(jobs):
        print(f"({len(jobs)} of {count}; --all for every one)", file=sys.stderr)
    return EXIT_OK


@_guarded
def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(_job_id(client, args.job_id))
    if args.json:
        print(json.dumps(job.raw, indent=1))
        return EXIT_OK
    lines = [
        ("id", job.id),
        ("name", job.name or ""),
        ("status", job.status + (" (cancel requested)" if job.cancel_requested else "")),
        ("stage", job.stage or ""),
        ("job", _job_text(job)),
        ("progress", _progress_text(job)),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
    ]
    place = job.raw.get("queue_place")
    if place:  # a queued job: its place and why it waits (fair shares)
        lines.append(("queue", f"place {place['position']}: {place['reason']}"))
    lines += [
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at)),
        ("finished", _when(job.finished_at)),
    ]
    if job.tags:
        lines.append(("tags", " ".join(job.tags)))
    if job.note:
        lines.append(("note", job.note))
    if job.error:
        lines.append(("error", job.error))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key.ljust(width)}  {value}".rstrip())
    return EXIT_OK


@_guarded
def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return _watch(
            client,
            _job_id(client, args.job_id),
            stream=not args.poll,
            interval=args.interval,
            timeout=args.wait_timeout,
        )


@_guarded
def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(_job_id(client, args.job_id))
    note = " (the worker stops between two steps)" if job.status == "cancelling" else ""
    print(f"{job.id} {job.status}{note}")
    return EXIT_OK


@_guarded
def cmd_tag(args: argparse.Namespace) -> int:
    if args.clear and (args.tags or args.remove):
        raise _Fail("--clear takes no tags and no --remove", EXIT_BAD_INPUT)
    if not args.clear and not args.tags and not args.remove:
        raise _Fail("give at least one TAG (or --remove TAG, --clear)", EXIT_BAD_INPUT)
    with _client(args) as client:
        job_id = _job_id(client, args.job_id)
        if args.clear:
            job = client.annotate(job_id, tags=[])
        else:
            kept = [t for t in client.get(job_id).tags if t not in args.remove]
            job = client.annotate(job_id, tags=kept + [t for t in args.tags if t not in kept])
    print(f"{job.id} tags: {' '.join(job.tags) or '(none)'}")
    return EXIT_OK


@_guarded
def cmd_note(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.text == "-" else args.text
    with _client(args) as client:
        job = client.annotate(_job_id(client, args.job_id), note=text.strip())
    print(f"{job.id} note: {job.note or '(none)'}")
    return EXIT_OK


@_guarded
def cmd_runs(args: argparse.Namespace) -> int:
    filters = {"loss": args.loss, "method": args.method, "scenario": args.scenario,
               "structure": args.structure, "sparsity": args.sparsity, "task": args.task,
               "tag": args.tag, "study": args.study, "stage": args.stage,
               "sort": args.sort}  # fmt: skip
    with _client(args) as client:
        if args.csv:
            sys.stdout.write(client.runs_csv(**filters))
            return EXIT_OK
        rows = client.runs(**filters)
    if args.json:
        print(json.dumps(rows, indent=1))
        return EXIT_OK
    print(format_runs(rows))
    return EXIT_OK


def format_runs(rows: Sequence[dict[str, Any]]) -> str:
    """The runs table for a terminal: percentages, a ⚠ on collapsed rows, short job ids."""
    if not rows:
        return "no runs yet: rows appear once a job has selected a point"
    ood_sets = sorted({name for row in rows for name in row.get("ood") or {}})
    headers = ["JOB", "NAME", "TASK", "LOSS", "METHOD", "SCENARIO", "STRUCTURE", "STAGE",
               "SPARSITY", "N",
               "ID", *[name.upper() for name in ood_sets], "FLAG", "TAGS", "STUDY"]  # fmt: skip
    lines = [
        [
            str(row["job_id"])[:8],
            _clip_middle(row.get("job_name") or "", NAME_WIDTH),
            row["task"],
            row["loss"],
            row["method"],
            row["scenario"],
            row.get("structure") or "unstructured",
            row["stage"],
            f"{100 * row['sparsity']:g}%",
            str(row["n"]),
            _pct(row.get("id_metric")),
            *[_pct((row.get("ood") or {}).get(name)) for name in ood_sets],
            "⚠ collapsed" if row.get("collapsed") else "",
            ",".join(row.get("tags") or []),
            _clip(row.get("study_name") or "", 20),
        ]
        for row in rows
    ]
    note = "(accuracy %, F1 % where a set has no accuracy; mean over N seeds)"
    return _table(headers, lines) + "\n" + note


@_guarded
def cmd_download(args: argparse.Namespace) -> int:
    with _client(args) as client:
        downloads = client.download(
            _job_id(client, args.job_id),
            what=args.what,
            out_dir=args.out,
            seed=args.seed,
            sparsity=args.sparsity,
            verify=not args.no_verify,
            extract=args.extract,
            force=args.force,
        )
    for done in downloads:
        note = (
            "already here"
            if done.skipped
            else (f"resumed at {done.resumed_from} bytes" if done.resumed_from else "")
        )
        checked = "" if args.no_verify else f"sha256 {done.artifact.sha256[:12]}… ok"
        extra = ", ".join(x for x in (checked, note) if x)
        print(f"{done.path}  ({_size(done.artifact.size)}{', ' + extra if extra else ''})")
        if done.extracted_to is not None:
            print(f"  extracted to {done.extracted_to}")
    return EXIT_OK


@_guarded
def cmd_push(args: argparse.Namespace) -> int:
    from srnet.hub_push import HubPushError, push_checkpoint

    with _client(args) as client:
        job = client.get(_job_id(client, args.job_id))
        if job.status != "succeeded":
            raise _Fail(f"job {job.id} is {job.status}: only a succeeded job has a checkpoint",
                        EXIT_FAILED)  # fmt: skip
        downloads = client.download(job.id, "checkpoint", args.out, seed=args.seed,
                                    sparsity=args.sparsity, extract=True)  # fmt: skip
    if len(downloads) != 1:
        choices = ", ".join(f"seed {d.artifact.seed} sparsity {d.artifact.sparsity:g}"
                            for d in downloads)  # fmt: skip
        raise _Fail(f"the job has {len(downloads)} checkpoints ({choices}): pick one with "
                    "--seed and --sparsity", EXIT_BAD_INPUT)  # fmt: skip
    folder = downloads[0].extracted_to
    assert folder is not None
    try:
        url = push_checkpoint(folder, args.repo_id, token=args.hf_token, private=not args.public)
    except HubPushError as exc:
        raise _Fail(f"push to {args.repo_id} failed: {exc}", EXIT_UNREACHABLE) from exc
    print(url)
    return EXIT_OK


# --- watch ---------------------------------------------------------------------------------


class ProgressLine:
    """One status line, redrawn in place on a terminal; elsewhere (a log file, CI) a line per
    change of status or stage and at most every `every_s` seconds otherwise."""

    def __init__(self, stream: TextIO, every_s: float = 30.0, width: int = 24):
        self.stream = stream
        self.tty = stream.isatty()
        self.every_s = every_s
        self.width = width
        self.detail: str | None = None
        self._shown = ""
        self._key: tuple[str, str | None] | None = None
        self._last_print = 0.0

    def render(self, job: Job) -> str:
        """The whole job first (bar, elapsed, ETA), then the stage it is in; a finished job
        says only how it ended and how long it ran."""
        if job.is_finished:
            took = _duration(job.elapsed_s)
            return job.status + (f" in {took}" if took else "")
        parts = [job.status]
        if job.status in ("running", "cancelling") and job.progress.job_fraction is not None:
            fraction = job.progress.job_fraction
            filled = round(self.width * fraction)
            bar = "█" * filled + "░" * (self.width - filled)
            parts.append(f"{bar} {100 * fraction:3.0f}%")
        if job.elapsed_s is not None:
            parts.append(f"elapsed {_duration(job.elapsed_s)}")
        if job.job_eta_s is not None and job.status == "running":
            parts.append(f"ETA {_duration(job.job_eta_s)}")
        if job.stage:
            parts.append(f"[{job.stage}]" + (f" {self.detail}" if self.detail else ""))
        if job.progress.phase == "evaluate":
            parts.append("evaluating")
        elif job.progress.total:
            parts.append(f"step {job.progress.step}/{job.progress.total}")
        elif job.progress.step:
            parts.append(f"step {job.progress.step}")
        if job.examples_per_s and job.status == "running" and job.progress.phase != "evaluate":
            parts.append(f"{job.examples_per_s:,.0f} ex/s")
        return "  ".join(parts)

    def update(self, job: Job) -> None:
        text = self.render(job)
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
            self._shown = text
            return
        key = (job.status, job.stage)
        now = time.monotonic()
        if key != self._key or now - self._last_print >= self.every_s:
            print(text, file=self.stream, flush=True)
            self._key, self._last_print = key, now

    def message(self, text: str) -> None:
        """A line above the bar (a stage starting, a log entry)."""
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K" + text + "\n" + self._shown)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = ""


def _watch(
    client: SRNetClient, job_id: str, *, stream: bool, interval: float, timeout: float | None
) -> int:
    line = ProgressLine(sys.stderr)

    def on_event(event: Event) -> None:
        if event.kind == "stage" and isinstance(event.data, dict):
            line.detail = event.data.get("detail")
        if event.kind in ("stage", "status", "artifact", "log") and event.message:
            stamp = event.at.strftime("%H:%M:%S") if event.at else ""
            line.message(f"{stamp} {event.message}")

    try:
        job = client.wait(
            job_id,
            timeout=timeout,
            stream=stream,
            poll_interval=interval,
            on_update=line.update,
            on_event=on_event,
        )
    except KeyboardInterrupt:
        line.close()
        return _error(f"stopped watching; the job goes on (srnet watch {job_id})", EXIT_CANCELLED)
    except BaseException:
        line.close()
        raise
    line.close()
    if job.status == "succeeded":
        table = format_metrics(client.metrics(job_id))
        print(table or "(no metrics were recorded)")
    elif job.status == "failed":
        print(f"srnet: job {job.id} failed: {job.error or 'no reason given'}", file=sys.stderr)
    else:
        print(f"srnet: job {job.id} was {job.status}", file=sys.stderr)
    return _EXIT_OF_STATUS.get(job.status, EXIT_FAILED)


# --- tables --------------------------------------------------------------------------------


def format_metrics(metrics: Metrics) -> str:
    """The selected point of every curve: accuracy (and F1 where there is one) of the ID dev
    set and each OOD set in %, then HANS per heuristic where HANS was evaluated."""
    points = sorted(
        metrics.selected,
        key=lambda p: (p.seed or 0, p.effective_sparsity or 0.0, p.stage),
    )
    if not points:
        return ""
    set_names: list[str] = []
    for point in points:
        for name in point.eval_sets():
            if name not in set_names:
                set_names.append(name)
    set_names.sort(key=lambda n: (n != "dev", n))
    columns: list[tuple[str, str]] = []
    for name in set_names:
        for key in ("accuracy", "f1"):
            if any(isinstance(p.eval_sets().get(name, {}).get(key), int | float) for p in points):
                columns.append((name, key))
    headers = (
        ["STAGE", "SEED", "SPARSITY", "STEP"]
        + [name if key == "accuracy" else f"{name} F1" for name, key in columns]
        + ["COLLAPSED ON"]
    )
    rows = []
    any_collapsed = False
    for point in points:
        sets = point.eval_sets()
        sparsity = point.effective_sparsity
        collapsed = [name for name in set_names if sets.get(name, {}).get("collapsed")]
        any_collapsed = any_collapsed or bool(collapsed)
        rows.append(
            [
                point.stage,
                "" if point.seed is None else str(point.seed),
                "" if sparsity is None else f"{sparsity:.0%}",
                str(point.step),
            ]
            + [_pct(sets.get(name, {}).get(key)) for name, key in columns]
            + [", ".join(collapsed) or "–"]
        )
    text = "Selected points (accuracy %, F1 %):\n" + _table(headers, rows)
    if any_collapsed:
        text += ("\nCOLLAPSED ON: the model predicts one class for at least 95% of that set; its "
                 "accuracy there is the share of that class, not robustness.")  # fmt: skip
    hans_rows = []
    heuristics: list[str] = []
    for point in points:
        hans = point.eval_sets().get("hans", {}).get("heuristics")
        if isinstance(hans, dict):
            heuristics += [h for h in hans if h not in heuristics]
    for point in points:
        hans = point.eval_sets().get("hans", {}).get("heuristics")
        if not isinstance(hans, dict):
            continue
        sparsity = point.effective_sparsity
        row = [
            point.stage,
            "" if point.seed is None else str(point.seed),
            "" if sparsity is None else f"{sparsity:.0%}",
        ]
        for name in heuristics:
            split = hans.get(name, {})
            row.append(f"{_pct(split.get('entailed'))} / {_pct(split.get('non_entailed'))}")
        hans_rows.append(row)
    if hans_rows:
        hans_headers = ["STAGE", "SEED", "SPARSITY", *heuristics]
        text += "\n\nHANS by heuristic (accuracy % on entailed / non-entailed gold labels):\n"
        text += _table(hans_headers, hans_rows)
    return text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _pct(value: Any) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{100 * value:.1f}"
    return "–"


def _percent(job: Job) -> str:
    if job.progress.fraction is None:
        return ""
    return f"{100 * job.progress.fraction:.0f}%"


def _job_percent(job: Job) -> str:
    if job.progress.job_fraction is None:
        return ""
    return f"{100 * job.progress.job_fraction:.0f}%"


def _job_text(job: Job) -> str:
    """The whole job: how far, for how long, and (running) how long still."""
    parts = [_job_percent(job)] if job.progress.job_fraction is not None else []
    if job.elapsed_s is not None:
        parts.append(("took " if job.is_finished else "elapsed ") + _duration(job.elapsed_s))
    if job.job_eta_s is not None and job.status == "running":
        parts.append(f"ETA {_duration(job.job_eta_s)}")
    return ", ".join(parts)


def _progress_text(job: Job) -> str:
    if job.is_finished:
        return ""
    if not job.progress.total:
        return f"step {job.progress.step}" if job.progress.step else ""
    text = f"{job.progress.step}/{job.progress.total} ({_percent(job)})"
    if job.progress.phase == "evaluate":
        text += ", evaluating"
    if job.examples_per_s:
        text += f", {job.examples_per_s:,.0f} ex/s"
    if job.eta_s is not None and job.status == "running":
        text += f", ETA {_duration(job.eta_s)}"
    return text


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return ""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value is not None else ""


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# Names in the list tables: wide enough for a study child's "study · setting", and cut in the
# middle, so the setting at the end, which tells the children apart, stays (issue 19 item 8).
NAME_WIDTH = 48


def _clip_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
