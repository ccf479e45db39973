"""One canonical JSON for every content hash (`srcore.jobspec.canonical`): the bytes persisted
hashes were taken over stay what they were, and no other module writes its own."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest

from srcore.bias.cache import BIAS_CODE_VERSION, cache_key
from srcore.jobspec.canonical import canonical_hash, canonical_json
from srcore.jobspec.spec import JobSpec, spec_hash
from srcore.stage_cache import stage_inputs_hash

ROOT = Path(__file__).resolve().parents[2]


def test_canonical_json_sorts_keys_drops_whitespace_and_keeps_non_ascii():
    value = {"b": [1, 2.5, None], "a": {"z": "Débiaisé · 偏り", "y": True}}
    text = canonical_json(value)
    assert text == '{"a":{"y":true,"z":"Débiaisé · 偏り"},"b":[1,2.5,null]}'
    assert canonical_hash(value) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert canonical_hash({"a": 1, "b": 2}) == canonical_hash({"b": 2, "a": 1})
    with pytest.raises(TypeError):
        canonical_json({"path": Path("/x")})  # no silent str() unless asked
    assert canonical_json({"path": Path("/x")}, default=str) == '{"path":"/x"}'


def test_the_hashes_stored_with_jobs_and_caches_keep_their_bytes():
    """spec_hash and request hashes (stored with every job and study), bias-cache keys (folders
    on disk) were sha256 of exactly these bytes before the helper existed."""
    from srcore.jobspec.spec import _without_late_defaults

    spec = JobSpec.model_validate({"task": "mnli", "name": "Débiaisé · 偏り"})
    hashed = _without_late_defaults(spec.model_dump(mode="json"))  # what spec_hash covers
    before = json.dumps(hashed, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert spec_hash(spec) == hashlib.sha256(before.encode("utf-8")).hexdigest()
    request = {"spec": hashed, "queue": "gpu"}  # the API's request hash
    old = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_hash(request) == hashlib.sha256(old.encode()).hexdigest()
    parts = {"kind": "overlap", "labels": ["entailment"], "seed": 0, "options": {}}
    old = json.dumps({"code_version": BIAS_CODE_VERSION, **parts}, sort_keys=True,
                     separators=(",", ":"), ensure_ascii=False)  # fmt: skip
    assert cache_key(parts) == hashlib.sha256(old.encode("utf-8")).hexdigest()


def test_stage_cache_keys_of_ascii_inputs_are_unchanged():
    """The stage cache wrote ASCII escapes before; for ASCII inputs (every built-in task) the
    bytes, and so the cached entries, are the same (pinned from the old function)."""
    inputs = {"v": "1", "model": {"name_or_path": "/m", "x": Path("/a")},
              "labels": ["entailment"], "n": 1.5}  # fmt: skip
    digest = "49dfb2134c947d8976e136b5be3fe708bef53ca495c837f48d5e3dfcccab8c68"
    assert stage_inputs_hash(inputs) == digest


def _compact_dumps(path: Path) -> list[int]:
    """Lines of `path` calling json.dumps with sorted keys and compact separators: a canonical
    form of its own (the old spec, request, stage-cache and bias-cache hashes all were)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "dumps"
            and {"separators", "sort_keys"} <= {k.arg for k in node.keywords}
        ):
            lines.append(node.lineno)
    return lines


def test_no_module_writes_its_own_canonical_json():
    files = [p for d in ("srcore", "api", "persistence", "worker", "srnet")
             for p in sorted((ROOT / d).rglob("*.py"))]  # fmt: skip
    found = {
        str(p.relative_to(ROOT)): lines
        for p in files
        if p.name != "canonical.py" and (lines := _compact_dumps(p))
    }
    assert found == {}
