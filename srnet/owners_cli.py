"""`srnet owners limits --owner NAME [--queued N] [--running N] [--studies N]`: an admin sets
one owner's limits (persistence.dispatch) in the database the service uses, or shows them.

N is a number (0: no limit for this owner) or `default` (the service's SRNET_MAX_*_PER_OWNER
again). Without a value the limits in force are printed, one per line.
"""

from __future__ import annotations

import argparse
import sys

_FIELDS = {"queued": "max_queued_jobs", "running": "max_running_jobs", "studies": "max_studies"}


def _limit(value: str) -> int | None:
    if value == "default":
        return None
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'default'") from None
    if not 0 <= number <= 1_000_000:
        raise argparse.ArgumentTypeError(f"{number} is not between 0 (no limit) and 1000000")
    return number


def register(sub: argparse._SubParsersAction) -> None:
    owners = sub.add_parser("owners", help="per-owner limits (fair shares)")
    owners.add_argument("--database-url", help="default: SRNET_DATABASE_URL")
    commands = owners.add_subparsers(dest="owners_command", required=True)
    limits = commands.add_parser("limits", help="show or set one owner's limits")
    limits.add_argument("--owner", required=True, help="owner (lab or user) name")
    for name, what in (("queued", "queued jobs"), ("running", "jobs running at a time"),
                       ("studies", "studies with unfinished jobs")):  # fmt: skip
        limits.add_argument(f"--{name}", type=_limit, default=argparse.SUPPRESS,
                            metavar="N|default", help=f"{what} (0: no limit)")  # fmt: skip
    owners.set_defaults(func=cmd_owners)


def cmd_owners(args: argparse.Namespace) -> int:
    from persistence.db import Database
    from persistence.dispatch import OwnerLimits
    from persistence.repositories import OwnerRepository
    from persistence.settings import SharedSettings

    settings = SharedSettings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    print(f"srnet owners: {settings.locations()}", file=sys.stderr)
    sqlite = settings.sqlite_path
    if sqlite is not None and not sqlite.exists():
        print(f"srnet owners: no database at {sqlite}: start the service first",
              file=sys.stderr)  # fmt: skip
        return 2
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            owner = OwnerRepository(session).get_by_name(args.owner)
            if owner is None:
                print(f"srnet owners: no owner {args.owner!r}", file=sys.stderr)
                return 1
            for name, column in _FIELDS.items():
                if name in args:
                    setattr(owner, column, getattr(args, name))
            session.commit()
            in_force = OwnerLimits.of(owner, settings)
            for name, column in _FIELDS.items():
                value = getattr(in_force, name)
                source = "service default" if getattr(owner, column) is None else "this owner"
                print(f"{name}\t{value or 'no limit'}\t({source})")
            return 0
    finally:
        database.dispose()
