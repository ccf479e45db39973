"""Hostile values in the fields a spec loads from, over HTTP (issue 19 items 13 and 15): a
symlink loop, a name no file system takes, a NUL byte in a study. Each is a 422 naming the
field, nothing stored; none is a 500 (which also cost the client its keep-alive connection)."""

from __future__ import annotations

from pathlib import Path

import pytest

SPEC = {"task": "mnli", "pruning": {"sparsities": [0.5]}, "training": {"max_steps": 5}}


def _loop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


@pytest.fixture
def roots(settings, tmp_path) -> Path:
    root = tmp_path / "data"
    settings.data_roots = [str(root)]
    return root


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"model": {"name_or_path": "{loop}"}}, ["model", "name_or_path"]),
        (
            {"data": {"train": {"format": "pair_json", "path": "{loop}/t.json"}}},
            ["data", "train", "path"],
        ),
        (
            {"debias": {"loss": "poe", "bias": {"source": "file", "path": "{loop}"}}},
            ["debias", "bias", "path"],
        ),
        (
            {"data": {"ood": {"h": {"format": "hans_tsv", "path": "{loop}"}}}},
            ["data", "ood", "h", "path"],
        ),
    ],
)
def test_a_symlink_loop_in_a_job_field_is_a_422_naming_it(client, auth, roots, body, loc):
    loop = str(_loop(roots))
    filled = _fill(body, loop)
    response = client.post("/jobs", json={**SPEC, **filled}, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", *loc] and "symlink loop" in error["msg"]
    # The same connection goes on serving.
    assert client.get("/jobs", headers=auth).json()["count"] == 0


def test_a_symlink_loop_in_a_study_row_is_a_422_naming_the_row(client, auth, roots):
    loop = str(_loop(roots))
    body = {
        "name": "loops",
        "base": SPEC,
        "rows": [{"name": "looped", "overrides": {"model.name_or_path": loop}}],
    }
    response = client.post("/studies", json=body, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"][:3] == ["body", "rows", 0], error
    assert "symlink loop" in error["msg"]


def test_a_path_component_too_long_for_any_file_system_is_a_422(client, auth, roots):
    path = f"{roots}/{'x' * 300}.json"
    body = {**SPEC, "data": {"train": {"format": "pair_json", "path": path}}}
    response = client.post("/jobs", json=body, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "data", "train", "path"]
    assert "longer than 255 bytes" in error["msg"]


@pytest.mark.parametrize(
    "body, loc",
    [
        ({"name": "a\x00b", "base": SPEC}, ["body", "name"]),
        (
            {
                "name": "s",
                "base": SPEC,
                "rows": [{"name": "r\x00", "overrides": {"debias.loss": "poe"}}],
            },
            ["body", "rows", 0, "name"],
        ),
        (
            {
                "name": "s",
                "base": SPEC,
                "axes": [{"path": "debias.loss", "values": ["none", "p\x00e"]}],
            },
            ["body", "axes", 0, "values"],
        ),
    ],
)
def test_a_nul_byte_in_a_study_is_a_422_naming_the_field(client, auth, body, loc):
    response = client.post("/studies", json=body, headers=auth)
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"][: len(loc)] == loc and "NUL" in error["msg"], error
    assert client.get("/studies", headers=auth).json()["count"] == 0


def _fill(value, loop: str):
    if isinstance(value, dict):
        return {k: _fill(v, loop) for k, v in value.items()}
    if isinstance(value, str):
        return value.replace("{loop}", loop)
    return value
