"""What a job spec names to load, and the one rule every such field follows.

Torch-free: the API checks a spec before it stores it, the worker again before it runs it.

Every spec field that names something to load carries `LOADS` in its JSON schema
(`json_schema_extra=loads(kind)`), so the walk below (`loaded_values`) visits it without a list
to keep in step; a test walks the schema to make sure no path-like field lacks the mark.

Kinds and their rule:
- `file` (data sources, bias and teacher files): `sample:<relative path>` inside the bundled
  folder, or a local path. On a service (`outside_roots`) a local path must be absolute and lie
  under one of `SRNET_DATA_ROOTS` (symlinks resolved; a loop is refused): relative and `~`
  paths depend on the process's working directory and home, which differ between the API and
  each worker. No component may be longer than a file name can be (255 bytes).
- `model` (the model and its tokenizer): a bundled name, a hub id of the hub's own shape
  (`name` or `org/name`; it never names a local folder, `srcore.models` refuses one that a folder
  of the same name would shadow), or a local directory written as one (`/abs`, `./rel`, `../rel`,
  `~/rel`). On a service the directory must be absolute and under `SRNET_DATA_ROOTS`.
- `hub_dataset` (`datasets` hub ids): `name[/config]:split` or `owner/name/config:split`, each
  part of the hub's own shape; never a local path (`srcore.data.hub` refuses a name that a local
  file or folder would shadow).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel

LOADS = "x-srnet-loads"
LoadKind = Literal["file", "model", "hub_dataset"]
LOAD_KINDS: tuple[LoadKind, ...] = ("file", "model", "hub_dataset")

SAMPLE_PREFIX = "sample:"
LOCAL_PREFIXES = ("/", "./", "../", "~")
# Linux's NAME_MAX and PATH_MAX: longer names fail every open with ENAMETOOLONG.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096
DATA_ROOTS_VARIABLE = "SRNET_DATA_ROOTS"
Loc = tuple[str | int, ...]

# The hub's repository names: letters, digits, `-`, `_`, `.`; no `--` or `..`; at most 96
# characters; not starting or ending with `-` or `.` (huggingface_hub's validate_repo_id).
_HUB_PART = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?$")
_CONFIG_OR_SPLIT = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?$")


def loads(kind: LoadKind) -> dict[str, Any]:
    """The `json_schema_extra` of a field that names something to load."""
    assert kind in LOAD_KINDS
    return {LOADS: kind}


def _hub_part_ok(part: str) -> bool:
    return bool(_HUB_PART.match(part)) and ".." not in part and "--" not in part


def is_local_model_path(value: str) -> bool:
    """A model field written as a local directory (`/abs`, `./rel`, `../rel`, `~/rel`)."""
    return value in (".", "..", "~") or value.startswith(LOCAL_PREFIXES)


def model_id_problem(value: str) -> str | None:
    """Why `value` is neither a local directory written as one nor a hub model id."""
    if is_local_model_path(value):
        return None
    parts = value.split("/")
    if len(parts) <= 2 and all(_hub_part_ok(p) for p in parts):
        return None
    return (
        "give a hub model id (`name` or `org/name`: letters, digits, `-`, `_`, `.`) or a local "
        "directory written as a path (`/abs/dir`, `./rel/dir`)"
    )


def dataset_id_problem(value: str) -> str | None:
    """Why `value` is not a `datasets` hub id `name[/config]:split` (`owner/name/config:split`)."""
    expected = "expected a `datasets` hub id `name[/config]:split` or `owner/name/config:split`"
    path, sep, split = value.rpartition(":")
    if not sep or not path or not _CONFIG_OR_SPLIT.match(split) or ".." in split:
        return expected
    parts = path.split("/")
    if len(parts) > 3 or not all(_hub_part_ok(p) for p in parts[:2]):
        return expected
    if len(parts) == 3 and (not _CONFIG_OR_SPLIT.match(parts[2]) or ".." in parts[2]):
        return expected
    return None


def sample_path_problem(value: str) -> str | None:
    """Why a `sample:` path would leave the bundled folder (None: it stays inside)."""
    if not value.startswith(SAMPLE_PREFIX):
        return None
    relative = value[len(SAMPLE_PREFIX) :]
    parts = PurePosixPath(relative).parts
    if (
        not relative
        or relative.startswith(("/", "~"))
        or "\\" in relative
        or ".." in parts
        or ":" in relative
    ):
        return (
            "a `sample:` path names a file inside the bundled sample data, "
            "e.g. `sample:mnli/train.json` (no `..`, no absolute path)"
        )
    return None


def _byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def path_length_problem(value: str) -> str | None:
    """Why no file system could open `value`: a component longer than NAME_MAX, or the whole
    longer than PATH_MAX (every open would fail with ENAMETOOLONG, on every attempt)."""
    if _byte_length(value) > PATH_MAX_BYTES:
        return f"the path is longer than {PATH_MAX_BYTES} bytes"
    longest = max(value.split("/"), key=_byte_length)
    if _byte_length(longest) > NAME_MAX_BYTES:
        return (
            f"a path component is longer than {NAME_MAX_BYTES} bytes "
            f"({longest[:16]}…, {_byte_length(longest)} bytes)"
        )
    return None


def load_problem(kind: LoadKind, value: str) -> str | None:
    """The spec-level rule (no SRNET_DATA_ROOTS): the value's shape for its kind."""
    if "\x00" in value:
        return "must not contain a NUL byte"
    if kind != "hub_dataset" and (value.startswith(SAMPLE_PREFIX) or _is_local(kind, value)):
        too_long = path_length_problem(value)
        if too_long is not None:
            return too_long
    if kind == "file":
        return sample_path_problem(value)
    if kind == "model":
        return model_id_problem(value)
    return dataset_id_problem(value)


def _field_kind(model: BaseModel, name: str) -> LoadKind | None:
    extra = type(model).model_fields[name].json_schema_extra
    return extra.get(LOADS) if isinstance(extra, dict) else None  # type: ignore[return-value]


def _walk(value: Any, loc: Loc) -> Iterator[tuple[Loc, LoadKind, str]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            child = getattr(value, name)
            kind = _field_kind(value, name)
            if kind is not None and isinstance(child, str):
                yield (*loc, name), kind, child
            else:
                yield from _walk(child, (*loc, name))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, (*loc, i))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, (*loc, key))


def loaded_values(spec: BaseModel) -> Iterator[tuple[Loc, LoadKind, str]]:
    """(field location, kind, value) for every value the spec names to load."""
    yield from _walk(spec, ())


def local_paths(spec: BaseModel) -> Iterator[tuple[Loc, str]]:
    """(field location, path) for every local file or directory the spec reads."""
    for loc, kind, value in loaded_values(spec):
        if _is_local(kind, value):
            yield loc, value


def _is_local(kind: LoadKind, value: str) -> bool:
    if kind == "file":
        return not value.startswith(SAMPLE_PREFIX)
    return kind == "model" and is_local_model_path(value)


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def resolve_local(value: str) -> tuple[Path | None, str | None]:
    """`value` with every symlink resolved, or why it cannot be: a symlink loop (pathlib
    raises RuntimeError on one), or an OS error such as a name too long."""
    try:
        return Path(value).resolve(), None
    except RuntimeError:
        return None, "the path runs into a symlink loop"
    except OSError as exc:
        return None, f"the path cannot be resolved ({exc.strerror or type(exc).__name__})"


def resolved_roots(roots: Sequence[str]) -> list[Path]:
    """The data roots with their symlinks resolved; a root that cannot be is a setup error."""
    resolved = []
    for root in roots:
        path, why = resolve_local(os.path.expanduser(root))
        if path is None:
            raise ValueError(f"{DATA_ROOTS_VARIABLE} entry {root!r}: {why}")
        resolved.append(path)
    return resolved


def path_problems(spec: BaseModel, roots: Sequence[str]) -> list[tuple[Loc, str, str]]:
    """(field location, value, why) for every value a service must refuse: the spec-level rule
    again (a stored row may predate it), and local paths that are not absolute, cannot be
    resolved (a symlink loop) or are not under one of `roots` (symlinks resolved). Empty
    `roots`: only bundled files and hub ids."""
    allowed_roots = resolved_roots(roots)
    allowed = ", ".join(roots) if roots else "none: use bundled samples or hub ids"
    problems = []
    for loc, kind, value in loaded_values(spec):
        why = load_problem(kind, value)
        if why is None and _is_local(kind, value):
            if not value.startswith("/"):
                why = (
                    f"give an absolute path under {DATA_ROOTS_VARIABLE} ({allowed}): relative "
                    "and ~ paths depend on each process's working folder"
                )
            else:
                resolved, why = resolve_local(value)
                if resolved is not None and not _under(resolved, allowed_roots):
                    why = f"not under {DATA_ROOTS_VARIABLE} ({allowed})"
        if why is not None:
            problems.append((loc, value, why))
    return problems


def outside_roots(spec: BaseModel, roots: Sequence[str]) -> list[tuple[Loc, str]]:
    """The spec's values that `path_problems` refuses, without the reasons."""
    return [(loc, value) for loc, value, _why in path_problems(spec, roots)]
