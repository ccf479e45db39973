"""Keyset pagination of job and study lists: opaque cursors over (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_PAGE_SIZE = 100  # the largest page of any list (the OpenAPI bound); settings may lower it


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps({"t": created_at.isoformat(), "i": str(job_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at = datetime.fromisoformat(data["t"])
        job_id = uuid.UUID(data["i"])
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError) as exc:
        raise InvalidCursor("invalid cursor") from exc
    if created_at.tzinfo is None:
        raise InvalidCursor("invalid cursor")
    return created_at, job_id
