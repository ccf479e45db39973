"""Owners (labs, users) and their API keys (stored as hashes; see persistence.keys)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from persistence.repositories.base import Clock
from persistence.tables import ApiKey, Owner, utcnow


class OwnerRepository:
    def __init__(self, session: Session):
        self._session = session

    def get(self, owner_id: uuid.UUID) -> Owner | None:
        return self._session.get(Owner, owner_id)

    def get_by_name(self, name: str) -> Owner | None:
        return self._session.scalar(select(Owner).where(Owner.name == name))

    def create(self, name: str) -> Owner:
        owner = Owner(name=name)
        self._session.add(owner)
        self._session.flush()
        return owner

    def get_or_create(self, name: str) -> Owner:
        return self.get_by_name(name) or self.create(name)


class ApiKeyRepository:
    # Writing last_used_at on every request would turn each read into a write.
    TOUCH_INTERVAL = timedelta(minutes=1)

    def __init__(self, session: Session, clock: Clock = utcnow):
        self._session = session
        self._clock = clock

    def create(
        self, owner: Owner, *, key_hash: str, prefix: str, name: str | None = None
    ) -> ApiKey:
        api_key = ApiKey(owner_id=owner.id, key_hash=key_hash, prefix=prefix, name=name)
        self._session.add(api_key)
        self._session.flush()
        return api_key

    def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return self._session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    def touch(self, api_key: ApiKey) -> bool:
        """Record use; answers whether anything was written (then the caller commits)."""
        now = self._clock()
        if api_key.last_used_at is not None and now - api_key.last_used_at < self.TOUCH_INTERVAL:
            return False
        api_key.last_used_at = now
        self._session.flush()
        return True

    def list_for_owner(self, owner_id: uuid.UUID) -> list[ApiKey]:
        return list(
            self._session.scalars(
                select(ApiKey).where(ApiKey.owner_id == owner_id).order_by(ApiKey.created_at)
            )
        )

    def revoke(self, prefix: str) -> int:
        result = self._session.execute(
            update(ApiKey)
            .where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
            .values(revoked_at=self._clock())
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0
