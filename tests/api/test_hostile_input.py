"""No 5xx from input: non-finite numbers in every number field, NUL bytes and lone surrogates in
every string field, cursors beyond the database's integer range — each a 4xx JSON error naming
the field (on SQLite and PostgreSQL), and nothing stored."""

from __future__ import annotations

import json
import re

import pytest

from api.jobs.schemas import JobCreate
from srcore.jobspec.spec import JobSpec
from tests.api.test_jobs import SPEC, job_count, post


def _leaves(schema: dict, defs: dict, loc: tuple = ()) -> dict[tuple, set[str]]:
    """loc ('*' for list items and dict values) -> the JSON types a leaf field accepts."""
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    found: dict[tuple, set[str]] = {}
    for option in schema.get("anyOf", []):
        for k, v in _leaves(option, defs, loc).items():
            found.setdefault(k, set()).update(v)
    if schema.get("type") in ("integer", "number", "string") and "enum" not in schema:
        found.setdefault(loc, set()).add(schema["type"])
    for name, prop in schema.get("properties", {}).items():
        for k, v in _leaves(prop, defs, (*loc, name)).items():
            found.setdefault(k, set()).update(v)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            for k, v in _leaves(schema[key], defs, (*loc, "*")).items():
                found.setdefault(k, set()).update(v)
    return found


SCHEMA = JobCreate.model_json_schema()
LEAVES = _leaves(SCHEMA, SCHEMA.get("$defs", {}))
NUMBERS = sorted(loc for loc, types in LEAVES.items() if types & {"integer", "number"})
STRINGS = sorted(loc for loc, types in LEAVES.items() if "string" in types)


def _body(loc: tuple, value_json: str) -> tuple[str, list]:
    """A request body (JSON text) with `value_json` at `loc`, and the loc a 422 must name."""
    marker = "__VALUE__"
    node: dict | list = {}
    root = node
    want: list = ["body"]
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        child = marker if last else ([] if loc[i + 1] == "*" and part != "ood" else {})
        if part == "*":
            if isinstance(node, list):
                node.append(child)
                want.append(0)
            else:
                node["k"] = child
                want.append("k")
        else:
            node[part] = child  # type: ignore[index]
            want.append(part)
        node = child  # type: ignore[assignment]
    # Objects at `ood.*` are dicts by name, `label_map.*` values strings.
    text = json.dumps(root).replace(json.dumps(marker), value_json)
    return text, want


def _raw(client, auth, text: str):
    return client.post(
        "/jobs", content=text.encode("utf-8", "surrogatepass"),
        headers={**auth, "Content-Type": "application/json"},
    )  # fmt: skip


def test_the_walk_saw_the_spec():
    assert len(NUMBERS) > 20 and len(STRINGS) > 15
    assert ("training", "max_steps") in NUMBERS and ("name",) in STRINGS


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e309"])
def test_non_finite_numbers_are_422_naming_the_field(client, auth, app_database, value):
    bad = []
    for loc in NUMBERS:
        text, want = _body(loc, value)
        response = _raw(client, auth, text)
        locs = [e["loc"] for e in response.json()["detail"]] if response.status_code == 422 else []
        if response.status_code != 422 or want not in locs:
            bad.append((loc, response.status_code, response.text[:200]))
    assert bad == []
    assert job_count(app_database) == 0


@pytest.mark.parametrize("value", ['"a\\u0000b"', '"a\\ud800b"', '"\\udfff"'])
def test_nul_bytes_and_lone_surrogates_are_422_naming_the_field(client, auth, app_database, value):
    bad = []
    for loc in STRINGS:
        text, want = _body(loc, value)
        response = _raw(client, auth, text)
        locs = [e["loc"] for e in response.json()["detail"]] if response.status_code == 422 else []
        if response.status_code != 422 or not any(want[: len(w)] == w[: len(want)] for w in locs):
            bad.append((loc, response.status_code, response.text[:200]))
    assert bad == []
    assert job_count(app_database) == 0


def test_a_nul_in_a_dict_key_is_refused(client, auth):
    body = '{"data": {"ood": {"a\\u0000": {"format": "hans_tsv", "path": "sample:x"}}}}'
    assert _raw(client, auth, body).status_code == 422


@pytest.mark.parametrize("steps", [2**63, 2**63 - 1, 10**7 + 1])
def test_step_counts_have_an_upper_bound(client, auth, steps):
    for section in ("training", "dense"):
        response = post(client, auth, {**SPEC, section: {"max_steps": steps}})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", section, "max_steps"]


def test_every_number_of_the_spec_has_an_upper_bound_in_its_description():
    schema = JobSpec.model_json_schema()
    unbounded = []
    for name, model in schema["$defs"].items():
        for field, prop in model.get("properties", {}).items():
            options = [prop, *prop.get("anyOf", [])]
            options += [o["items"] for o in list(options) if isinstance(o.get("items"), dict)]
            numbers = [o for o in options if o.get("type") in ("integer", "number")]
            if not numbers:
                continue
            bounded = all(
                ("maximum" in o or "exclusiveMaximum" in o)
                and min(o.get("maximum", 2**53), o.get("exclusiveMaximum", 2**53)) <= 2**31
                for o in numbers
            )
            if not bounded or not re.search(r"Range( \(each\))?: .*x [≤<] \d", prop["description"]):
                unbounded.append(f"{name}.{field}")
    assert unbounded == []


@pytest.mark.parametrize(
    "query",
    [
        "events?after=9223372036854775808",
        "events?after=99999999999999999999999999",
        "events/stream?last_event_id=9223372036854775808",
    ],
)
def test_cursors_beyond_the_database_range_are_422(client, auth, query):
    job = post(client, auth).json()
    response = client.get(f"/jobs/{job['id']}/{query}", headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "query"


def test_a_last_event_id_header_beyond_the_range_is_ignored():
    from api.jobs.stream import parse_last_event_id

    assert parse_last_event_id(str(2**63)) is None
    assert parse_last_event_id(str(2**63 - 1)) == 2**63 - 1
