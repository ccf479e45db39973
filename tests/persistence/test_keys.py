import hashlib

from sqlalchemy import select

from persistence.keys import create_api_key, ensure_bootstrap_key, verify_api_key
from persistence.repositories import ApiKeyRepository
from persistence.tables import ApiKey


def test_key_is_stored_hashed_and_verifies(database):
    with database.session() as session:
        created = create_api_key(session, "lab-a", name="laptop")
        session.commit()
        key = created.key
        assert key.startswith("srn_") and len(key) >= 40
        row = session.scalar(select(ApiKey))
        assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
        assert row.prefix == key[:12]
        assert key not in (row.key_hash, row.prefix, row.name)
        owner = verify_api_key(session, key)
        assert owner is not None and owner.name == "lab-a"
        assert verify_api_key(session, key + "x") is None
        assert verify_api_key(session, "") is None
        assert verify_api_key(session, "x" * 10_000) is None
        session.commit()
        assert session.scalar(select(ApiKey)).last_used_at is not None


def test_revoked_key_no_longer_verifies(database):
    with database.session() as session:
        created = create_api_key(session, "lab-b")
        session.commit()
        assert ApiKeyRepository(session).revoke(created.api_key.prefix) == 1
        session.commit()
        assert verify_api_key(session, created.key) is None


def test_bootstrap_key_is_stored_once(database):
    key = "b" * 43
    with database.session() as session:
        assert ensure_bootstrap_key(session, key, "admin") is True
        session.commit()
        assert ensure_bootstrap_key(session, key, "admin") is False
        assert verify_api_key(session, key).name == "admin"
        assert len(session.scalars(select(ApiKey)).all()) == 1
