"""Content-addressed cache of pipeline stage results (bias model, dense fine-tune).

A stage's key is the sha256 of a canonical JSON of everything that determines its result
(model, data fingerprint, settings, seed, code version). Two jobs with the same key share one
result; a second worker asking while the first computes waits on a file lock instead of
training the same dense model twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srcore.files import exclusive_lock

# Bump when a stage's computation changes so old cache entries are not reused.
STAGE_CODE_VERSION = "1"


def canonical_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class StageCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def key(self, stage: str, inputs: dict[str, Any]) -> str:
        return f"{stage}-{canonical_hash({'v': STAGE_CODE_VERSION, **inputs})[:32]}"

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> Path | None:
        path = self.entry(key)
        return path if (path / ".complete").exists() else None

    def _lock(self, key: str):
        return exclusive_lock(self.root / f".{key}.lock")

    def get_or_build(self, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
        """Return (entry dir, hit). `build(tmp_dir)` fills a temporary dir that is then
        renamed into place, so a crash never leaves a half-made entry behind."""
        found = self.lookup(key)
        if found is not None:
            return found, True
        with self._lock(key):
            found = self.lookup(key)
            if found is not None:
                return found, True
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
            try:
                build(tmp)
                (tmp / ".complete").write_text("ok")
                target = self.entry(key)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return target, False
