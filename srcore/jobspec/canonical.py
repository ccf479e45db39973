"""Canonical JSON, the one byte form every content hash is taken over: keys sorted, no
whitespace, UTF-8 with non-ASCII characters as themselves.

Job and study identities (`spec_hash`), idempotent-request hashes, stage- and bias-cache keys
and mask-file headers all use it, so one value always hashes the same wherever it is hashed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any


def canonical_json(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """`value` as canonical JSON text; `default` turns values JSON has no type for into ones
    it has (as `json.dumps`' `default`), else they raise TypeError."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=default
    )


def canonical_hash(value: Any, *, default: Callable[[Any], Any] | None = None) -> str:
    """sha256 (hex) of `value`'s canonical JSON in UTF-8."""
    return hashlib.sha256(canonical_json(value, default=default).encode("utf-8")).hexdigest()
