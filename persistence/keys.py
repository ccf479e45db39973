"""API keys: creation and verification (the command line is `srnet keys`, srnet/keys_cli.py).

Keys are 32 random bytes (256 bits) from `secrets`, shown once, stored as their SHA-256. A slow
password hash (bcrypt, argon2) protects low-entropy secrets against guessing after a database
leak; a 256-bit random key cannot be guessed, so one SHA-256 is as safe and keeps the lookup a
single indexed equality on every request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from persistence.repositories import ApiKeyRepository, OwnerRepository
from persistence.tables import ApiKey, Owner

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
