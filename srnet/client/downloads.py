"""Downloads of a job's artifacts: sha256-checked, resumed with `Range` (also across calls:
`<name>.part` stays on disk), checkpoint archives optionally unpacked. Synchronous only: they
write files."""

from __future__ import annotations

import builtins
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import time
import unicodedata
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx

from srnet.client.calls import job_path
from srnet.client.errors import (
    ApiError,
    ArtifactNotAvailable,
    ChecksumMismatch,
    ClientError,
    TargetExists,
    Unreachable,
    raise_for,
)
from srnet.client.models import Artifact, Download, describe_artifacts, sparsity_fraction

if TYPE_CHECKING:
    from collections.abc import Callable

ArtifactChoice = Literal["checkpoint", "mask", "report", "plot", "onnx", "all"]
# "report" means the whole report: metrics JSON and its plot.
KINDS_OF: dict[str, frozenset[str]] = {
    "checkpoint": frozenset({"checkpoint"}),
    "mask": frozenset({"mask"}),
    "report": frozenset({"report", "plot"}),
    "plot": frozenset({"plot"}),
    "onnx": frozenset({"onnx"}),  # jobs with export.onnx: a tar of each unit's ONNX folder
    "all": frozenset({"checkpoint", "mask", "report", "plot", "onnx"}),
}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: str) -> str:
    """A file name with no directory part and only [A-Za-z0-9._-]: artifact names come from the
    service and must never place a file outside `out_dir`."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    return (_UNSAFE_NAME.sub("_", text).strip("._") or "artifact")[:200]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def same_tree(left: Path, right: Path) -> bool:
    """The same relative file names with the same bytes (sizes first, then content)."""

    def files(root: Path) -> dict[str, Path]:
        return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}

    ours, theirs = files(left), files(right)
    if ours.keys() != theirs.keys():
        return False
    if any(ours[k].stat().st_size != theirs[k].stat().st_size for k in ours):
        return False
    return all(sha256_file(ours[k]) == sha256_file(theirs[k]) for k in ours)


def content_range_start(header: str | None) -> int | None:
    match = re.match(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", header or "")
    return int(match.group(1)) if match else None


class Downloads:
    """The download methods of `SRNetClient` (a mixin: it uses the client's httpx.Client and
    its `artifacts()`)."""

    _http: httpx.Client
    artifacts: Callable[[str], builtins.list[Artifact]]

    def download(
        self,
        job_id: str,
        what: ArtifactChoice = "checkpoint",
        out_dir: str | os.PathLike[str] = ".",
        *,
        seed: int | None = None,
        sparsity: float | str | None = None,
        verify: bool = True,
        extract: bool = False,
        force: bool = False,
        retries: int = 5,
    ) -> builtins.list[Download]:
        """Download the job's artifacts of one kind (optionally one seed / sparsity) into
        `out_dir`. Each file is checked against its sha256; a broken transfer continues where
        it stopped (`Range`), also across calls (`<name>.part` stays on disk). With
        `extract`, checkpoint archives are unpacked into `out_dir/<name without suffix>/`
        (the model directory itself, one level deep). A different file or folder already
        there raises TargetExists unless `force`; an identical one is skipped."""
        kinds = KINDS_OF.get(what)
        if kinds is None:
            raise ValueError(f"what must be one of {sorted(KINDS_OF)}")
        sparsity = sparsity_fraction(sparsity)
        available = self.artifacts(job_id)
        chosen = [
            a
            for a in available
            if a.kind in kinds
            and (seed is None or a.seed == seed)
            and (sparsity is None or (a.sparsity is not None and abs(a.sparsity - sparsity) < 1e-9))
        ]
        if not chosen:
            asked = ", ".join(
                part
                for part in (
                    f"seed {seed}" if seed is not None else "",
                    f"sparsity {sparsity:g}" if sparsity is not None else "",
                )
                if part
            )
            raise ArtifactNotAvailable(
                f"job {job_id} has no {what} artifact"
                + (f" with {asked}" if asked else "")
                + "; it has: "
                + (describe_artifacts(available) or "no artifacts (yet)")
            )
        return [
            self.download_artifact(
                job_id,
                artifact,
                out_dir,
                verify=verify,
                extract=extract,
                force=force,
                retries=retries,
            )
            for artifact in chosen
        ]

    def download_artifact(
        self,
        job_id: str,
        artifact: Artifact,
        out_dir: str | os.PathLike[str] = ".",
        *,
        verify: bool = True,
        extract: bool = False,
        force: bool = False,
        retries: int = 5,
    ) -> Download:
        folder = Path(out_dir)
        final = folder / safe_filename(artifact.name)
        part = final.with_name(final.name + ".part")
        already_here = final.is_file() and final.stat().st_size == artifact.size
        if already_here and (not verify or sha256_file(final) == artifact.sha256):
            done = Download(artifact, final, skipped=True)
            return self._maybe_extract(done, force) if extract else done
        if (final.exists() or final.is_symlink()) and not force:
            raise TargetExists(
                f"{final} exists and is not {artifact.name} of this job; "
                "move it away or pass --force (force=True) to replace it"
            )
        folder.mkdir(parents=True, exist_ok=True)
        url = f"{job_path(job_id)}/artifacts/{artifact.id}"
        etag = f'"{artifact.sha256}"'
        resumed_from = 0
        failures = 0
        while True:
            offset = part.stat().st_size if part.exists() else 0
            if offset > artifact.size:
                part.unlink()
                offset = 0
            if offset == artifact.size:
                break
            headers = {"Accept": "*/*"}
            if offset:
                # If-Range: only continue if the bytes are still the same artifact.
                headers.update({"Range": f"bytes={offset}-", "If-Range": etag})
            try:
                with self._http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 416:
                        part.unlink(missing_ok=True)
                        failures += 1
                        if failures > retries:
                            raise ApiError(416, "the service refused every byte range")
                        continue
                    if not response.is_success:
                        response.read()
                        raise_for(response)
                    if response.status_code == 206:
                        start = content_range_start(response.headers.get("Content-Range"))
                        if start != offset:
                            raise ApiError(206, f"asked for bytes from {offset}, got {start}")
                        resumed_from = max(resumed_from, offset)
                        mode = "ab"
                    else:
                        mode = "wb"  # a whole body: start over
                    # Chunks as they arrive (no re-chunking): what came before a dropped
                    # connection is on disk, and the next request continues after it.
                    with part.open(mode) as handle:
                        for chunk in response.iter_bytes():
                            handle.write(chunk)
                if part.stat().st_size >= artifact.size:
                    break
                failures += 1  # the body ended early without an error
            except httpx.TransportError as exc:
                failures += 1
                if failures > retries:
                    raise Unreachable(
                        f"download of {artifact.name} broke {failures} times; run again to "
                        f"resume from {part.stat().st_size if part.exists() else 0} bytes"
                    ) from exc
                time.sleep(min(0.2 * 2**failures, 10.0))
                continue
            if failures > retries:
                raise Unreachable(f"download of {artifact.name} keeps ending early")
        if verify:
            actual = sha256_file(part)
            if actual != artifact.sha256 or part.stat().st_size != artifact.size:
                part.unlink()
                raise ChecksumMismatch(
                    f"{artifact.name}: sha256 {actual} is not the announced {artifact.sha256}; "
                    "the file was deleted"
                )
        if force and final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        part.replace(final)
        done = Download(artifact, final, resumed_from=resumed_from)
        return self._maybe_extract(done, force) if extract else done

    @staticmethod
    def _maybe_extract(done: Download, force: bool = False) -> Download:
        """Unpack an archive into `<folder>/<name without suffix>/`. An archive that holds one
        folder (as the service's checkpoints do) becomes that folder, so the model directory
        is one level deep. A target with the archive's content already is kept as it is."""
        path = done.path
        name = path.name
        for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
            if name.endswith(suffix):
                target = path.with_name(name[: -len(suffix)])
                break
        else:
            return done
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=path.parent))
        try:
            if name.endswith(".zip"):
                with zipfile.ZipFile(path) as archive:
                    root = staging.resolve()
                    for member in archive.namelist():
                        dest = (staging / member).resolve()
                        if not dest.is_relative_to(root):
                            raise ClientError(f"{name}: member {member!r} leaves the folder")
                    archive.extractall(staging)
            else:
                with tarfile.open(path) as archive:
                    # The "data" filter refuses absolute paths, links out of the folder, devices.
                    archive.extractall(staging, filter="data")
            entries = [p for p in staging.iterdir() if not p.name.startswith(".")]
            unpacked = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
            if target.exists() or target.is_symlink():
                if target.is_dir() and same_tree(unpacked, target):
                    return Download(done.artifact, path, done.resumed_from, done.skipped, target)
                if not force:
                    raise TargetExists(
                        f"{target} exists with other content; move it away or pass --force "
                        "(force=True) to replace it"
                    )
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            unpacked.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Download(done.artifact, path, done.resumed_from, done.skipped, target)
