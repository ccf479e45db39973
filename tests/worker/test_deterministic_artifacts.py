"""Identical content gives identical artifact bytes (and sha256): checkpoint archives carry no
times, owners or modes of the worker's files."""

from __future__ import annotations

import hashlib
import os

from worker.results import write_tar


def _checkpoint(folder, mtime: int, mode: int):
    (folder / "sub").mkdir(parents=True)
    for name, data in [("config.json", b"{}"), ("model.safetensors", b"w" * 1000),
                       ("sub/tokenizer.json", b"t")]:  # fmt: skip
        path = folder / name
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (mtime, mtime + 0.25))
    return folder


def test_identical_checkpoints_give_identical_archives(tmp_path):
    a = _checkpoint(tmp_path / "a", mtime=1_600_000_000, mode=0o600)
    b = _checkpoint(tmp_path / "b", mtime=1_700_000_123, mode=0o664)
    write_tar(a, tmp_path / "a.tar", "job-x")
    write_tar(b, tmp_path / "b.tar", "job-x")
    digest = [hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("a.tar", "b.tar")]
    assert digest[0] == digest[1]
