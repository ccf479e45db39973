"""API keys: creation, verification and the `python -m persistence.keys` command.

Keys are 32 random bytes (256 bits) from `secrets`, shown once, stored as their SHA-256. A slow
password hash (bcrypt, argon2) protects low-entropy secrets against guessing after a database
leak; a 256-bit random key cannot be guessed, so one SHA-256 is as safe and keeps the lookup a
single indexed equality on every request.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from persistence.db import Database, upgrade_database
from persistence.models import ApiKey, Owner
from persistence.repositories import ApiKeyRepository, OwnerRepository
from persistence.settings import Settings

KEY_PREFIX = "srn_"
DISPLAY_PREFIX_LENGTH = 12  # "srn_" + 8 characters: enough to tell keys apart in a listing
MAX_KEY_LENGTH = 256


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


@dataclass(frozen=True)
class CreatedKey:
    key: str  # the plaintext: show it once, it is not stored
    api_key: ApiKey
    owner: Owner


def create_api_key(session: Session, owner_name: str, *, name: str | None = None) -> CreatedKey:
    """A new key for `owner_name` (the owner is created if needed). The caller commits."""
    owner = OwnerRepository(session).get_or_create(owner_name)
    key = generate_key()
    api_key = ApiKeyRepository(session).create(
        owner, key_hash=hash_key(key), prefix=display_prefix(key), name=name
    )
    return CreatedKey(key=key, api_key=api_key, owner=owner)


def verify_api_key(session: Session, key: str) -> Owner | None:
    """The owner of an active key, or None. Records the use (throttled); the caller commits."""
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    keys = ApiKeyRepository(session)
    api_key = keys.get_active_by_hash(hash_key(key))
    if api_key is None:
        return None
    keys.touch(api_key)
    return api_key.owner


def ensure_bootstrap_key(session: Session, key: str, owner_name: str) -> bool:
    """Store `key` (hashed) for `owner_name` unless it is stored already. Answers whether it
    wrote anything; the caller commits. Used at start with SRNET_BOOTSTRAP_API_KEY."""
    keys = ApiKeyRepository(session)
    key_hash = hash_key(key)
    if keys.get_active_by_hash(key_hash) is not None:
        return False
    owner = OwnerRepository(session).get_or_create(owner_name)
    keys.create(owner, key_hash=key_hash, prefix=display_prefix(key), name="bootstrap")
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m persistence.keys", description=__doc__)
    parser.add_argument("--database-url", help="default: SRNET_DATABASE_URL / Settings")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--owner", required=True, help="owner (lab or user) name")
    create.add_argument("--name", help="what the key is for")
    revoke = commands.add_parser("revoke", help="revoke the keys that start with PREFIX")
    revoke.add_argument("prefix", help=f"the {DISPLAY_PREFIX_LENGTH}-character display prefix")
    listing = commands.add_parser("list", help="list an owner's keys (prefixes only)")
    listing.add_argument("--owner", required=True)
    args = parser.parse_args(argv)

    url = args.database_url or Settings().database_url
    upgrade_database(url)  # a key may be created before the service first starts
    database = Database(url)
    try:
        with database.session() as session:
            if args.command == "create":
                owner_name = args.owner.strip()
                if not owner_name or len(owner_name) > 200:
                    parser.error("--owner must be 1 to 200 characters")
                created = create_api_key(session, owner_name, name=args.name)
                session.commit()
                print(created.key)
                print(
                    f"owner {created.owner.name}: key {created.api_key.prefix}… stored hashed; "
                    "it cannot be shown again",
                    file=sys.stderr,
                )
            elif args.command == "revoke":
                n = ApiKeyRepository(session).revoke(args.prefix)
                session.commit()
                print(f"revoked {n} key(s)", file=sys.stderr)
                return 0 if n else 1
            else:
                owner = OwnerRepository(session).get_by_name(args.owner)
                if owner is None:
                    print(f"no owner {args.owner!r}", file=sys.stderr)
                    return 1
                for api_key in ApiKeyRepository(session).list_for_owner(owner.id):
                    state = "revoked" if api_key.revoked_at else "active"
                    print(f"{api_key.prefix}\t{state}\t{api_key.created_at:%Y-%m-%d}\t"
                          f"{api_key.name or ''}")
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
