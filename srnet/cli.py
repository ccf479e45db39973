"""`srnet`: run a search on this machine, run the service, manage keys.

Exit codes scripts can rely on: 0 success, 1 the job failed, 2 bad input (spec, file),
3 cancelled/interrupted, 4 the service could not be reached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED, EXIT_UNREACHABLE = 0, 1, 2, 3, 4


def _read_spec(path: str):
    from pydantic import ValidationError

    from srcore.jobspec.spec import load_spec
    from srcore.jobspec.task_registry import TaskConfigError, resolve_task

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SystemExit(_fail(f"cannot read spec {path}: {exc.strerror}", EXIT_BAD_INPUT)) from exc
    try:
        spec = load_spec(text)
        resolve_task(spec)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(x) for x in e['loc']) or '(spec)'}: {e['msg']}" for e in exc.errors()
        ]
        raise SystemExit(
            _fail(f"invalid spec {path}:\n" + "\n".join(lines), EXIT_BAD_INPUT)
        ) from exc
    except TaskConfigError as exc:
        raise SystemExit(_fail(f"invalid spec {path}: {exc}", EXIT_BAD_INPUT)) from exc
    return spec


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srnet")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return "unknown"


def _fail(message: str, code: int) -> int:
    print(f"srnet: {message}", file=sys.stderr)
    return code


def cmd_search(args: argparse.Namespace) -> int:
    spec = _read_spec(args.spec)
    from srcore.bias import BiasFileError
    from srcore.data.errors import DataFormatError
    from srcore.jobspec.callbacks import Cancelled
    from srcore.models import ModelNotFoundError
    from srcore.pipeline import clean_work, run_search
    from srnet.progress import TerminalProgress

    progress = TerminalProgress()
    try:
        result = run_search(
            spec, Path(args.out), progress, cache_dir=Path(args.cache) if args.cache else None
        )
    except (DataFormatError, BiasFileError, ModelNotFoundError) as exc:
        progress.close()
        return _fail(str(exc), EXIT_BAD_INPUT)
    except (Cancelled, KeyboardInterrupt):
        progress.close()
        return _fail("interrupted; run the same command again to resume", EXIT_CANCELLED)
    progress.close()
    if not args.keep_work:
        clean_work(Path(args.out))
    print(f"metrics: {result.metrics_path}")
    print(f"plot:    {result.plot_path}")
    for path in result.checkpoints:
        print(f"checkpoint: {path}")
    print(json.dumps(result.summary_json(), indent=1))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srnet", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"srnet {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run a whole search job on this machine")
    search.add_argument("spec", help="job spec JSON file")
    search.add_argument("--out", required=True, help="output directory (resumes if it exists)")
    search.add_argument("--cache", help="stage cache shared between jobs (default: OUT/work)")
    search.add_argument(
        "--keep-work",
        action="store_true",
        help="keep OUT/work's trainer checkpoints after success (the stage cache is always kept)",
    )
    search.set_defaults(func=cmd_search)

    _add_service_commands(sub)
    _add_client_commands(sub)
    from srnet import study_cli

    study_cli.register(sub)
    from srnet import onnx_cli

    onnx_cli.register(sub)
    return parser


def _add_service_commands(sub) -> None:
    """Service commands live in their own modules so `srnet search` stays light."""
    try:
        from srnet import service_cli
    except ImportError:  # pragma: no cover - a partial install without the service
        return
    service_cli.register(sub)


def _add_client_commands(sub) -> None:
    """submit, list, status, watch, cancel, download: the service from a terminal (httpx only)."""
    from srnet import client_cli

    client_cli.register(sub)


# Options whose value may start with "-" (`--sort -ood.hans`, as the README writes it):
# argparse would take such a value for an option of its own.
DASH_VALUED_OPTIONS = ("--sort",)


def attach_dash_values(argv: list[str]) -> list[str]:
    """`--sort -x` → `--sort=-x` for the options in DASH_VALUED_OPTIONS."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in DASH_VALUED_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and len(argv[i + 1]) > 1 and not argv[i + 1].startswith("--"):  # fmt: skip
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(attach_dash_values(sys.argv[1:] if argv is None else argv))
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`srnet list | head`): the rest is not wanted. Point stdout at
        # /dev/null so the interpreter's last flush does not print a traceback either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    return code


if __name__ == "__main__":
    raise SystemExit(main())
