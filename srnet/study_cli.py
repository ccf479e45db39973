"""`srnet study`: run a study on this machine (`study run`)."""

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
    from srcore.jobspec.study import table_records
    from srcore.jobspec.study_format import markdown_table
    from srcore.pipeline.study_run import run_study
    from srnet.progress import TerminalProgress

    def log(text: str) -> None:
        print(f"== {text}", flush=True)

    try:
        run = run_study(study, Path(args.out), lambda _child: TerminalProgress(), log=log)
    except (Cancelled, KeyboardInterrupt):
        print("srnet: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_CANCELLED
    print(markdown_table(table_records(run.rows)))
    print(f"table: {run.csv_path}\njson:  {run.json_path}\nplot:  {run.plot_path}")
    print(json.dumps({"seconds": run.seconds}, indent=1))
    return EXIT_OK


def register(sub) -> argparse.ArgumentParser:
    study = sub.add_parser("study", help="studies: a grid of jobs and one results table")
    commands = study.add_subparsers(dest="study_command", required=True)
    run = commands.add_parser("run", help="run a whole study on this machine (resumable)")
    run.add_argument("study", help="study JSON file (base spec, axes, rows)")
    run.add_argument("--out", required=True, help="output folder (resumes if it exists)")
    run.set_defaults(func=cmd_study_run)
    return study
