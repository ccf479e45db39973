"""Small file-system primitives srcore relies on: atomic writes and locks (crash safety), and
the confinement of the files a job names (a service reads only under its data roots).

Confinement checks what was opened, not a path checked earlier: a spec's paths are checked
against the roots when it is submitted and when a worker claims it (srcore.jobspec.spec_paths),
but a folder can be swapped after that, and the files inside an allowed model folder can be
symlinks to anywhere. Inside `confined_to(roots, staging)` every file a job names is opened
first and the opened file's real location (/proc/self/fd) is checked against the roots
(`open_confined`); a model folder is copied, file by file from the checked descriptors, into
`staging` and loaded from there (`stage_model_dir`), so what transformers reads is what was
checked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An flock on `path` (created if needed): one process at a time across a host."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def try_exclusive_lock(path: Path) -> Iterator[bool]:
    """An flock on `path` if no other process holds it: yields True when taken, False when
    another process has it (nothing waits)."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- confinement to the data roots ------------------------------------------------------------

DATA_ROOTS_VARIABLE = "SRNET_DATA_ROOTS"
# A model folder copied into the staging folder: bounds on what one job may name.
MAX_MODEL_FILES = 256
MAX_MODEL_DEPTH = 3


class OutsideRootsError(ValueError):
    """A file a job named resolved, once opened, outside the data roots (a symlink out, a
    folder swapped after the check). The message names the file as the job wrote it, never
    where it led."""


@dataclass(frozen=True)
class Confinement:
    roots: tuple[Path, ...]  # resolved
    staging: Path


_active: Confinement | None = None


@contextlib.contextmanager
def confined_to(roots: Sequence[str | Path], staging: Path) -> Iterator[Confinement]:
    """Inside: every file `open_confined` and `stage_model_dir` open must lie under `roots`
    (after every symlink; the bundled sample data always may); model folders are copied
    under `staging`, which is removed on exit. Process-wide (a worker's pool child runs one
    job), not per thread."""
    global _active
    from srcore.jobspec.spec_paths import resolve_local

    # A root that cannot be resolved allows nothing here; spec_paths.path_problems, which the
    # worker runs first, fails the job naming it.
    resolved = tuple(
        path for path, _why in (resolve_local(os.path.expanduser(str(r))) for r in roots) if path
    )
    previous = _active
    staging = Path(staging)
    staging.mkdir(parents=True, exist_ok=True)
    _active = Confinement(resolved, staging)
    try:
        yield _active
    finally:
        _active = previous
        shutil.rmtree(staging, ignore_errors=True)


def active_confinement() -> Confinement | None:
    return _active


def _allowed_roots(confinement: Confinement) -> tuple[Path, ...]:
    from srcore.data.loaders import sample_data_root

    return (*confinement.roots, sample_data_root().resolve())


def _opened_path(fd: int, path: Path) -> Path:
    """Where the open descriptor `fd` really points. /proc/self/fd says it directly; without
    /proc, the path resolved after the open must be the very file opened (same device and
    inode), or the open is refused as raced."""
    proc = f"/proc/self/fd/{fd}"
    if os.path.islink(proc):
        return Path(os.readlink(proc))
    real = Path(os.path.realpath(path))
    opened, found = os.fstat(fd), os.stat(real)
    if (opened.st_dev, opened.st_ino) != (found.st_dev, found.st_ino):
        raise OutsideRootsError(f"{path}: the file changed while it was opened")
    return real


def _check_opened(fd: int, path: Path, confinement: Confinement) -> None:
    real = _opened_path(fd, path)
    if not any(real == root or root in real.parents for root in _allowed_roots(confinement)):
        raise OutsideRootsError(
            f"{path}: resolves outside {DATA_ROOTS_VARIABLE} once opened (a symlink, or a "
            "folder changed after the job was checked)"
        )
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OutsideRootsError(f"{path}: not a regular file")


def open_confined(path: str | Path) -> BinaryIO:
    """`open(path, "rb")`, and inside `confined_to` the opened file checked against the roots
    (OutsideRootsError, the file closed). Outside a confinement, a plain open."""
    path = Path(path)
    handle = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
    confinement = _active
    if confinement is not None:
        try:
            _check_opened(handle.fileno(), path, confinement)
        except BaseException:
            handle.close()
            raise
    return handle


def read_confined(path: str | Path) -> bytes:
    with open_confined(path) as handle:
        return handle.read()


def stage_model_dir(path: str | Path) -> Path:
    """Inside `confined_to`: a private copy of the model folder `path`, made from descriptors
    each checked against the roots (a file that leads outside refuses the whole folder);
    outside a confinement, `path` itself. Sub-folders are copied up to MAX_MODEL_DEPTH, at
    most MAX_MODEL_FILES files."""
    source = Path(path)
    confinement = _active
    if confinement is None:
        return source
    destination = Path(tempfile.mkdtemp(prefix="model-", dir=confinement.staging))
    copied = 0

    def copy_folder(folder: Path, into: Path, depth: int) -> None:
        nonlocal copied
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            real = _opened_path(fd, folder)
            if not any(real == r or r in real.parents for r in _allowed_roots(confinement)):
                raise OutsideRootsError(
                    f"{folder}: resolves outside {DATA_ROOTS_VARIABLE} once opened"
                )
            names = sorted(os.listdir(fd))
        finally:
            os.close(fd)
        for name in names:
            entry = folder / name
            if os.path.isdir(entry):
                if depth >= MAX_MODEL_DEPTH:
                    continue  # deeper folders are no part of a transformers checkpoint
                (into / name).mkdir()
                copy_folder(entry, into / name, depth + 1)
                continue
            copied += 1
            if copied > MAX_MODEL_FILES:
                raise OutsideRootsError(f"{source}: more than {MAX_MODEL_FILES} files")
            with open_confined(entry) as handle, open(into / name, "wb") as out:
                shutil.copyfileobj(handle, out, 1 << 20)

    copy_folder(source, destination, 0)
    return destination


# --- what a job error may show ----------------------------------------------------------------


def _install_prefixes() -> list[tuple[str, str]]:
    import sys

    package_parent = str(Path(__file__).resolve().parents[1])
    prefixes = {package_parent: "<srnet>", sys.prefix: "<python>", sys.base_prefix: "<python>"}
    return sorted(prefixes.items(), key=lambda item: -len(item[0]))


def without_install_paths(text: str) -> str:
    """`text` with the server's install folders (srnet's, Python's) replaced by `<srnet>` and
    `<python>`: a job error is shown to users and must not map the server."""
    for prefix, placeholder in _install_prefixes():
        if prefix and prefix != "/":
            text = text.replace(prefix + "/", placeholder + "/")
    return text
