"""`srnet keys create | list | revoke`: API keys from a terminal, in the database the service
uses (SRNET_HOME, SRNET_DATABASE_URL; printed on stderr). A SQLite database that does not
exist yet is refused, never created: a key there would not open the running service.

The key itself is printed once on stdout (scripts capture it); everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    """Add `keys` to the `srnet` command (no service module is imported until it runs)."""
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys.add_argument("--database-url", help="default: SRNET_DATABASE_URL")
    commands = keys.add_subparsers(dest="keys_command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--owner", required=True, help="owner (lab or user) name")
    create.add_argument("--name", help="what the key is for")
    listing = commands.add_parser("list", help="an owner's keys (prefixes only)")
    listing.add_argument("--owner", required=True)
    revoke = commands.add_parser("revoke", help="revoke the keys with this display prefix")
    revoke.add_argument("prefix", help="the display prefix `srnet keys list` shows")
    keys.set_defaults(func=cmd_keys)


def cmd_keys(args: argparse.Namespace) -> int:
    from persistence.db import Database, upgrade_database
    from persistence.settings import SharedSettings

    settings = SharedSettings()
    if args.database_url:
        settings = settings.model_copy(update={"database_url": args.database_url})
    url = settings.database_url
    print(f"srnet keys: {settings.locations()}", file=sys.stderr)
    # A key in a database no service reads is useless: never create one (e.g. run from
    # another folder, or before the service first started).
    sqlite = settings.sqlite_path
    if sqlite is not None and not sqlite.exists():
        print(f"srnet keys: no database at {sqlite}: start the service first (srnet serve or "
              "srnet migrate), or point SRNET_HOME / SRNET_DATABASE_URL at its database",
              file=sys.stderr)  # fmt: skip
        return 2
    upgrade_database(url)
    database = Database(url)
    try:
        with database.session() as session:
            command = {"create": _create, "list": _list, "revoke": _revoke}[args.keys_command]
            return command(session, args)
    finally:
        database.dispose()
        sys.stdout.flush()


def _create(session, args: argparse.Namespace) -> int:
    from persistence.keys import create_api_key

    owner_name = args.owner.strip()
    if not owner_name or len(owner_name) > 200:
        print("srnet keys: --owner must be 1 to 200 characters", file=sys.stderr)
        return 2
    created = create_api_key(session, owner_name, name=args.name)
    session.commit()
    print(created.key)
    print(f"owner {created.owner.name}: key {created.api_key.prefix}… stored hashed; "
          "it cannot be shown again", file=sys.stderr)  # fmt: skip
    return 0


def _list(session, args: argparse.Namespace) -> int:
    from persistence.repositories import ApiKeyRepository, OwnerRepository

    owner = OwnerRepository(session).get_by_name(args.owner)
    if owner is None:
        print(f"no owner {args.owner!r}", file=sys.stderr)
        return 1
    for api_key in ApiKeyRepository(session).list_for_owner(owner.id):
        state = "revoked" if api_key.revoked_at else "active"
        print(f"{api_key.prefix}\t{state}\t{api_key.created_at:%Y-%m-%d}\t{api_key.name or ''}")
    return 0


def _revoke(session, args: argparse.Namespace) -> int:
    from persistence.repositories import ApiKeyRepository

    n = ApiKeyRepository(session).revoke(args.prefix)
    session.commit()
    print(f"revoked {n} key(s)", file=sys.stderr)
    return 0 if n else 1
