"""`srnet study`: run a study on this machine (`study run`), or on the service (`study submit |
list | status | table | cancel`, through srnet.client; URL and key as for `srnet submit`);
`study compare` reads either (a study id, or a folder `study run` wrote).

Exit codes as every `srnet` command: 0 ok, 1 the service refused the operation, 2 bad input
(invalid study, unknown study, missing or wrong API key), 3 cancelled or interrupted,
4 service unreachable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_OK, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 2, 3


def read_study(path: str):
    """The StudySpec in `path`, or SystemExit(2) with the field named."""
    from pydantic import ValidationError

    from srcore.jobspec.study import StudyError, StudySpec, expand_study

    try:
        study = StudySpec.model_validate_json(Path(path).read_text(encoding="utf-8"))
        expand_study(study)
    except OSError as exc:
        print(f"srnet: cannot read study {path}: {exc.strerror}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from exc
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(x) for x in e['loc']) or '(study)'}: {e['msg']}" for e in exc.errors()
        ]
        print(f"srnet: invalid study {path}:\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from exc
    except StudyError as exc:
        print(f"srnet: invalid study {path}: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT) from exc
    return study


def cmd_study_run(args: argparse.Namespace) -> int:
    study = read_study(args.study)
    from srcore.jobspec.callbacks import Cancelled
    from srcore.jobspec.study import StudyError
    from srcore.jobspec.study_format import markdown_table
    from srcore.jobspec.study_table import table_records
    from srcore.pipeline.study_run import run_study
    from srnet.progress import TerminalProgress

    def log(text: str) -> None:
        print(f"== {text}", flush=True)

    try:
        run = run_study(
            study,
            Path(args.out),
            lambda _child: TerminalProgress(),
            log=log,
            source=args.study,
            only=args.only,
        )
    except StudyError as exc:
        print(f"srnet: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (Cancelled, KeyboardInterrupt):
        print("srnet: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(markdown_table(table_records(run.rows)))
    print(f"table: {run.csv_path}\njson:  {run.json_path}\nplot:  {run.plot_path}")
    print(json.dumps({"seconds": run.seconds}, indent=1))
    return EXIT_OK


def cmd_study_merge(args: argparse.Namespace) -> int:
    from srcore.jobspec.study import StudyError
    from srcore.jobspec.study_format import markdown_table
    from srcore.jobspec.study_table import table_records
    from srcore.pipeline.study_merge import merge_study, read_part

    out = Path(args.out)
    try:
        parts = [read_part(Path(folder)) for folder in args.folders]
        if any(out.resolve() == p.folder.resolve() for p in parts):
            raise StudyError("out", "write the merged table to a new folder, not to a part")
        study, rows = merge_study(parts, out, args.name)
    except StudyError as exc:
        print(f"srnet: cannot merge: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(markdown_table(table_records(rows)))
    print(f"seeds {study.base.training.seeds} from {len(parts)} folders → {out}")
    return EXIT_OK


# --- on the service ------------------------------------------------------------------------


def _service(command):
    """The client commands' error handling (messages and exit codes), imported on use."""

    def run(args: argparse.Namespace) -> int:
        from srnet.client_cli import _guarded

        return _guarded(command)(args)

    return run


def _connect(args: argparse.Namespace):
    from srnet.client_cli import _client

    return _client(args)


def _children_table(study) -> str:
    from srnet.client_cli import _clip, _table

    rows = [[c.job_id, _clip(c.label, 40), c.role, c.status] for c in study.children]
    return _table(["JOB", "ROW", "ROLE", "STATUS"], rows)


def _counts(study) -> str:
    return ", ".join(f"{n} {status}" for status, n in study.counts.items() if n) or "no jobs"


def progress_text(study) -> str:
    """One line: jobs done, the study's percent (running children by their own progress),
    elapsed and ETA, as GET /studies/{id} gives them (issue 19 item 7)."""
    from srnet.client_cli import _duration

    p = study.raw.get("progress") or {}
    if not p:
        return f"{_counts(study)}"
    parts = [f"{p['done']} of {p['total']} jobs done", f"{100 * p['fraction']:.0f}%"]
    if p.get("running"):
        parts.append(f"{p['running']} running")
    if p.get("elapsed_s") is not None:
        parts.append(f"elapsed {_duration(p['elapsed_s'])}")
    if study.status in ("queued", "running"):
        eta = p.get("eta_s")
        parts.append(f"ETA {_duration(eta)}" if eta is not None else "ETA unknown yet")
    return " · ".join(parts)


@_service
def cmd_study_submit(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        study = client.submit_study(
            args.study, idempotency_key=args.idempotency_key, queue=args.queue
        )
    if args.json:
        print(json.dumps(study.raw, indent=1))
        return EXIT_OK
    print(study.id)  # alone on the first line: ID=$(srnet study submit s.json | head -1)
    print(f"submitted {study.name or 'study'}: {study.jobs} jobs ({_counts(study)})")
    print(_children_table(study))
    return EXIT_OK


@_service
def cmd_study_list(args: argparse.Namespace) -> int:
    from srnet.client_cli import _clip, _table

    with _connect(args) as client:
        page = client.list_studies(limit=max(1, min(args.limit, 100)))
    if args.json:
        for study in page.studies:
            print(json.dumps(study.raw))
        return EXIT_OK
    rows = [
        [
            s.id,
            _clip(s.name or "", 32),
            s.status,
            f"{s.jobs - s.counts.get('queued', 0) - s.counts.get('running', 0)}/{s.jobs}",
            s.created_at.strftime("%Y-%m-%d %H:%M") if s.created_at else "",
        ]
        for s in page.studies
    ]
    print(_table(["ID", "NAME", "STATUS", "DONE", "CREATED (UTC)"], rows))
    if page.count > len(page.studies):
        print(f"({len(page.studies)} of {page.count}; --limit for more)", file=sys.stderr)
    return EXIT_OK


@_service
def cmd_study_status(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        study = client.get_study(args.study_id)
    if args.json:
        print(json.dumps(study.raw, indent=1))
        return EXIT_OK
    print(f"id      {study.id}\nname    {study.name or ''}\nstatus  {study.status}")
    print(f"jobs    {study.jobs} ({_counts(study)})")
    print(f"progress {progress_text(study)}\n")
    print(_children_table(study))
    return EXIT_OK


@_service
def cmd_study_watch(args: argparse.Namespace) -> int:
    """Follow a study until every child finished: its progress line as it moves (every
    --interval seconds), then its status and children; exit 0 when it succeeded."""
    import time

    last = None
    with _connect(args) as client:
        while True:
            study = client.get_study(args.study_id)
            line = f"{study.status:<9} {progress_text(study)}"
            if line != last:
                print(line, file=sys.stderr, flush=True)
                last = line
            if study.is_finished:
                break
            time.sleep(args.interval)
    print(_children_table(study))
    return {"succeeded": EXIT_OK, "failed": 1}.get(study.status, EXIT_CANCELLED)


@_service
def cmd_study_table(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        if args.csv:
            sys.stdout.write(client.study_table_csv(args.study_id))
            return EXIT_OK
        records = client.study_table(args.study_id)
    if args.json:
        print(json.dumps(records, indent=1))
        return EXIT_OK
    if not records:
        print("no results yet: rows appear as the study's jobs select their points",
              file=sys.stderr)  # fmt: skip
        return EXIT_OK
    from srcore.jobspec.study_format import markdown_table

    print(markdown_table(records))
    return EXIT_OK


def _print_comparison(diffs: list, as_json: bool) -> None:
    from srcore.jobspec.study_compare import INTERVAL, comparison_text

    if as_json:
        print(json.dumps([d.as_record() for d in diffs], indent=1))
        return
    print(comparison_text(diffs))
    print(f"a − b in percentage points, paired by seed; {INTERVAL}.")


def _local_seeds(folder: Path) -> list[dict] | None:
    """The per-seed records of a study folder (`srnet study run --out`); None, with the
    reason printed, when it has none."""
    table = folder / "table.json"
    try:
        seeds = json.loads(table.read_text(encoding="utf-8")).get("seeds")
    except (OSError, ValueError) as exc:
        print(f"srnet: cannot read {table}: {exc}", file=sys.stderr)
        return None
    if seeds is None:
        hint = "run `srnet study run` on the study again to rebuild it"
        print(
            f"srnet: {table} has no per-seed records (older than they are); {hint}", file=sys.stderr
        )
    return seeds


def cmd_study_compare(args: argparse.Namespace) -> int:
    folder = Path(args.study)
    if not folder.is_dir():
        return _compare_on_service(args)
    from srcore.jobspec.study_compare import ComparisonError, compare_rows

    seeds = _local_seeds(folder)
    if seeds is None:
        return EXIT_BAD_INPUT
    try:
        diffs = compare_rows(seeds, args.row_a, args.row_b, args.sparsity)
    except ComparisonError as exc:
        print(f"srnet: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    _print_comparison(diffs, args.json)
    return EXIT_OK


@_service
def _compare_on_service(args: argparse.Namespace) -> int:
    from srcore.jobspec.study_compare import PairedDifference

    params = {"format": "json", "a": args.row_a, "b": args.row_b}
    if args.sparsity is not None:
        params["sparsity"] = args.sparsity
    with _connect(args) as client:
        # srnet.client has no method for the comparison query yet: the table route with a and b
        path = client._study_path(args.study) + "/table"
        body = client._request("GET", path, params=params).json()
    diffs = [PairedDifference(**{**c, "seeds": tuple(c["seeds"])}) for c in body["comparisons"]]
    _print_comparison(diffs, args.json)
    return EXIT_OK


@_service
def cmd_study_cancel(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        study = client.cancel_study(args.study_id)
    print(f"{study.id} {study.status} ({_counts(study)})")
    return EXIT_OK


def register(sub) -> argparse.ArgumentParser:
    study = sub.add_parser("study", help="studies: a grid of jobs and one results table")
    commands = study.add_subparsers(dest="study_command", required=True)
    run = commands.add_parser("run", help="run a whole study on this machine (resumable)")
    run.add_argument("study", help="study JSON file (base spec, axes, rows)")
    run.add_argument("--out", required=True, help="output folder (resumes if it exists)")
    run.add_argument(
        "--only",
        action="append",
        metavar="ROW",
        help="run only this row (its table label or child key; repeatable), e.g. to add "
        "seeds to the rows a comparison rests on",
    )
    run.set_defaults(func=cmd_study_run)
    merge = commands.add_parser(
        "merge",
        help="one table over the seeds of several `study run` folders of the same study "
        "(e.g. seeds 1-3, then 4-5 of the rows a verdict rests on)",
    )
    merge.add_argument("folders", nargs="+", metavar="FOLDER", help="`study run` folders")
    merge.add_argument("--out", required=True, help="folder for the merged table")
    merge.add_argument("--name", help="the merged study's name (default: the first folder's)")
    merge.set_defaults(func=cmd_study_merge)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help="service URL (default: $SRNET_URL)")
    common.add_argument("--key", help="API key (default: $SRNET_API_KEY)")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per request")

    p = commands.add_parser("submit", parents=[common], help="submit a study to the service")
    p.add_argument("study", help="study JSON file (base spec, axes, rows)")
    p.add_argument("--queue", choices=("gpu", "cpu"), help="worker queue (default: service's)")
    p.add_argument("--idempotency-key", help="submitting again with it gives the same study")
    p.add_argument("--json", action="store_true", help="print the study as JSON")
    p.set_defaults(func=cmd_study_submit)

    p = commands.add_parser("list", parents=[common], help="your studies, newest first")
    p.add_argument("--limit", type=int, default=20, help="studies to show (default 20)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_study_list)

    p = commands.add_parser("status", parents=[common], help="a study's status and children")
    p.add_argument("study_id", metavar="ID")
    p.add_argument("--json", action="store_true", help="print the study as JSON")
    p.set_defaults(func=cmd_study_status)

    p = commands.add_parser(
        "watch", parents=[common], help="follow a study's progress until every child finished"
    )
    p.add_argument("study_id", metavar="ID")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between polls (10)")
    p.set_defaults(func=cmd_study_watch)

    p = commands.add_parser("table", parents=[common], help="a study's results table")
    p.add_argument("study_id", metavar="ID")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true", help="the CSV export")
    form.add_argument("--json", action="store_true", help="the records as JSON")
    p.set_defaults(func=cmd_study_table)

    p = commands.add_parser(
        "compare",
        parents=[common],
        help="row A − row B paired by seed, with a 95%% t interval, for every metric",
        description="ROW_A − ROW_B for every metric, paired by seed (same seed: same dense "
        "model and data order), with a 95%% t interval over the seeds. STUDY is a study id on "
        "the service or a folder `srnet study run` wrote. A row with only a dense model pairs "
        "with every sparsity of the other.",
    )
    p.add_argument("study", metavar="STUDY", help="study id, or a local study folder")
    p.add_argument("row_a", metavar="ROW_A", help='row label, e.g. "loss poe"')
    p.add_argument("row_b", metavar="ROW_B", help='row label, e.g. "dense CE"')
    p.add_argument("--sparsity", type=float, help="only this sparsity of ROW_A (e.g. 0.5)")
    p.add_argument("--json", action="store_true", help="the differences as JSON")
    p.set_defaults(func=cmd_study_compare)

    p = commands.add_parser("cancel", parents=[common], help="cancel a study's unfinished jobs")
    p.add_argument("study_id", metavar="ID")
    p.set_defaults(func=cmd_study_cancel)
    return study
