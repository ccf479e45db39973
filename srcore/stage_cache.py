"""Content-addressed cache of pipeline stage results (bias model, dense fine-tune).

A stage's key is the sha256 of a canonical JSON of everything that determines its result
(model, data fingerprint, settings, seed, code version). Two jobs with the same key share one
result; a second worker asking while the first computes waits on a file lock instead of
training the same dense model twice.

Entries are directories `<root>/<key>/` with two lock files beside them: `.<key>.lock` (held
exclusively while the entry is built) and `.<key>.use` (held shared by every `StageCache` that
returned the entry, until its `close()` or the end of its process). `evict(max_bytes)` removes
least recently used entries until the cache fits, and only entries whose both locks it takes
without waiting: an entry being built or in use by any process is never removed. The last use
is the mtime of the entry's `.complete` marker (touched at each hit).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from srcore.files import exclusive_lock, try_exclusive_lock
from srcore.jobspec.canonical import canonical_hash

# Bump when a stage's computation changes so old cache entries are not reused.
STAGE_CODE_VERSION = "1"


def stage_inputs_hash(payload: Any) -> str:
    """The canonical hash of a stage's inputs; values JSON has no type for (paths) as text."""
    return canonical_hash(payload, default=str)


COMPLETE = ".complete"


@dataclass
class Eviction:
    """What `StageCache.evict` did."""

    removed: list[str] = field(default_factory=list)  # keys, oldest use first
    freed_bytes: int = 0
    kept_in_use: list[str] = field(default_factory=list)  # over the limit but locked
    size_bytes: int = 0  # the cache's size afterwards


def tree_size(path: Path) -> int:
    """Bytes of the regular files under `path` (links not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            total += st.st_size
    return total


class StageCache:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._held: dict[str, IO[str]] = {}  # key -> its `.use` file, locked shared

    def close(self) -> None:
        """Let go of the entries this cache returned (they may be evicted from now on)."""
        held, self._held = self._held, {}
        for handle in held.values():
            handle.close()  # closing the file releases its flock

    def _hold(self, key: str) -> None:
        """A shared lock on the entry's `.use` file, kept until close(): evict() skips it. An
        evictor holds it exclusively only while it deletes, so this waits at most that long."""
        if key in self._held:
            return
        handle = open(self.root / f".{key}.use", "w")  # noqa: SIM115 (kept open: the lock)
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)
        except BaseException:
            handle.close()
            raise
        self._held[key] = handle

    def key(self, stage: str, inputs: dict[str, Any]) -> str:
        return f"{stage}-{stage_inputs_hash({'v': STAGE_CODE_VERSION, **inputs})[:32]}"

    def entry(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str) -> Path | None:
        path = self.entry(key)
        return path if (path / COMPLETE).exists() else None

    def _lock(self, key: str):
        return exclusive_lock(self.root / f".{key}.lock")

    def get_or_build(self, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
        """Return (entry dir, hit). `build(tmp_dir)` fills a temporary dir that is then
        renamed into place, so a crash never leaves a half-made entry behind. The entry is held
        (never evicted) until close()."""
        self._hold(key)
        found = self.lookup(key)
        if found is not None:
            _touch(found / COMPLETE)
            return found, True
        with self._lock(key):
            found = self.lookup(key)
            if found is not None:
                return found, True
            tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
            try:
                build(tmp)
                (tmp / COMPLETE).write_text("ok")
                target = self.entry(key)
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            return target, False

    def size_bytes(self) -> int:
        return tree_size(self.root)

    def evict(self, max_bytes: int) -> Eviction:
        """Remove least recently used entries (and builds a crash left behind) until the cache
        holds at most `max_bytes`. An entry another build or user holds is kept, whatever its
        age (reported in `kept_in_use`)."""
        report = Eviction()
        entries: list[tuple[float, str, Path, int]] = []
        leftovers: list[tuple[str, Path]] = []
        for path in self.root.iterdir():
            if not path.is_dir() or path.is_symlink():
                continue
            if path.name.startswith("."):  # `.<key>.<random>`: a build's temporary folder
                leftovers.append((path.name[1:].rsplit(".", 1)[0], path))
                continue
            try:
                used = (path / COMPLETE).stat().st_mtime
            except FileNotFoundError:
                used = 0.0  # never completed: first to go
            entries.append((used, path.name, path, tree_size(path)))
        total = sum(size for *_, size in entries) + sum(tree_size(p) for _, p in leftovers)
        for key, path in leftovers:  # a build in progress holds its key's build lock
            with try_exclusive_lock(self.root / f".{key}.lock") as free:
                if free:
                    size = tree_size(path)
                    shutil.rmtree(path, ignore_errors=True)
                    total -= size
                    report.freed_bytes += size
        for _used, key, path, size in sorted(entries):
            if total <= max_bytes:
                break
            if key in self._held or not self._remove_if_unused(key, path):
                report.kept_in_use.append(key)
                continue
            total -= size
            report.freed_bytes += size
            report.removed.append(key)
        report.size_bytes = total
        return report

    def _remove_if_unused(self, key: str, path: Path) -> bool:
        with try_exclusive_lock(self.root / f".{key}.lock") as not_building:
            if not not_building:
                return False
            with try_exclusive_lock(self.root / f".{key}.use") as unused:
                if not unused:
                    return False
                # Out of the way first (atomic), then deleted: a reader never sees half of it.
                doomed = self.root / f".{key}.evicted-{time.monotonic_ns()}"
                os.replace(path, doomed)
                shutil.rmtree(doomed, ignore_errors=True)
                return True


def _touch(path: Path) -> None:
    # A read-only cache still works; its LRU order is then the build order.
    with contextlib.suppress(OSError):
        os.utime(path)
