"""The stage cache stays under a size: least recently used entries go first, never one that a
build or a user (any StageCache, any process) holds (issue 11 item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from srcore.files import exclusive_lock
from srcore.stage_cache import StageCache

MB = 1_000_000


def _build(size: int):
    def build(tmp: Path) -> None:
        (tmp / "model.safetensors").write_bytes(b"\0" * size)

    return build


def _cache_with(root: Path, keys: list[str]) -> None:
    """Entries built and let go, used in the order of `keys` (the first is the oldest)."""
    for i, key in enumerate(keys):
        cache = StageCache(root)
        path, _ = cache.get_or_build(key, _build(MB))
        cache.close()
        stamp = time.time() - 1000 + i
        os.utime(path / ".complete", (stamp, stamp))


def test_least_recently_used_entries_go_first(tmp_path: Path):
    _cache_with(tmp_path, ["dense-a", "dense-b", "dense-c"])
    # a hit on the oldest makes it the newest
    cache = StageCache(tmp_path)
    _, hit = cache.get_or_build("dense-a", _build(MB))
    assert hit
    cache.close()
    report = StageCache(tmp_path).evict(int(2.5 * MB))
    assert report.removed == ["dense-b"]
    assert report.size_bytes <= 2.5 * MB and report.freed_bytes >= MB
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["dense-a", "dense-c"]
    assert StageCache(tmp_path).evict(0).removed == ["dense-c", "dense-a"]
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_an_entry_in_use_is_never_evicted(tmp_path: Path):
    _cache_with(tmp_path, ["dense-old", "dense-new"])
    user = StageCache(tmp_path)  # a job still using the oldest entry
    path, hit = user.get_or_build("dense-old", _build(MB))
    assert hit
    report = StageCache(tmp_path).evict(0)
    assert report.removed == ["dense-new"]
    assert report.kept_in_use == ["dense-old"]
    assert (path / "model.safetensors").stat().st_size == MB
    user.close()
    assert StageCache(tmp_path).evict(0).removed == ["dense-old"]


def test_an_entry_used_by_another_process_is_kept(tmp_path: Path):
    _cache_with(tmp_path, ["dense-x"])
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time; from srcore.stage_cache import StageCache; "
            f"c = StageCache({str(tmp_path)!r}); c.get_or_build('dense-x', None); "
            "print('held', flush=True); time.sleep(60)"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert StageCache(tmp_path).evict(0).kept_in_use == ["dense-x"]
        assert (tmp_path / "dense-x" / ".complete").exists()
    finally:
        holder.kill()
        holder.wait()
    assert StageCache(tmp_path).evict(0).removed == ["dense-x"]


def test_an_entry_being_built_and_a_crashed_build_left_behind(tmp_path: Path):
    _cache_with(tmp_path, ["dense-a"])
    crashed = tmp_path / ".dense-z.k2j3h4"  # mkdtemp's name of an interrupted build
    crashed.mkdir()
    (crashed / "part").write_bytes(b"\0" * MB)
    building = tmp_path / ".dense-b.q1w2e3"
    building.mkdir()
    (building / "part").write_bytes(b"\0" * MB)
    with exclusive_lock(tmp_path / ".dense-b.lock"):  # dense-b is being built right now
        report = StageCache(tmp_path).evict(0)
        assert not crashed.exists()
        assert building.exists()
        assert report.removed == ["dense-a"]
    assert StageCache(tmp_path).evict(0).size_bytes == 0


def test_under_the_limit_nothing_goes(tmp_path: Path):
    _cache_with(tmp_path, ["dense-a", "dense-b"])
    report = StageCache(tmp_path).evict(10 * MB)
    assert report.removed == [] and report.size_bytes >= 2 * MB
