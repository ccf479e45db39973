"""The local file paths a job spec names, for services that must confine them.

Torch-free: the API checks a spec before it stores it. `sample:` files (bundled with srnet)
and hub ids are not local paths.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from srcore.jobspec.spec import JobSpec, SourceSpec

LOCAL_PREFIXES = ("/", ".", "~")


def _source_paths(loc: tuple[str | int, ...], source: SourceSpec | None):
    if source is not None and source.path is not None and not source.path.startswith("sample:"):
        yield (*loc, "path"), source.path


def local_paths(spec: JobSpec) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(field location, path) for every local file or directory the spec reads."""
    data = spec.data
    yield from _source_paths(("data", "train"), data.train)
    yield from _source_paths(("data", "dev"), data.dev)
    for name, source in (data.ood or {}).items():
        yield from _source_paths(("data", "ood", name), source)
    if data.ood_training is not None:
        for i, source in enumerate(data.ood_training.sources):
            yield from _source_paths(("data", "ood_training", "sources", i), source)
    if spec.debias.bias.path is not None:
        yield ("debias", "bias", "path"), spec.debias.bias.path
    if spec.debias.teacher.path is not None:
        yield ("debias", "teacher", "path"), spec.debias.teacher.path
    if spec.model.name_or_path.startswith(LOCAL_PREFIXES):
        yield ("model", "name_or_path"), spec.model.name_or_path


def outside_roots(spec: JobSpec, roots: Sequence[str]) -> list[tuple[tuple[str | int, ...], str]]:
    """The spec's local paths that do not lie under one of `roots` (symlinks resolved)."""
    resolved_roots = [Path(os.path.expanduser(r)).resolve() for r in roots]
    bad = []
    for loc, raw in local_paths(spec):
        path = Path(os.path.expanduser(raw)).resolve()
        if not any(path == root or root in path.parents for root in resolved_roots):
            bad.append((loc, raw))
    return bad
