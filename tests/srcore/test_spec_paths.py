"""One rule for every spec field that names something to load (srcore.jobspec.spec_paths).

The schema walk finds every string field of JobSpec's JSON schema; each one that looks like it
names something to load must carry the `x-srnet-loads` mark, and the mark is what the checks
walk — a new path field cannot skip the rule."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from srcore.jobspec.spec import JobSpec
from srcore.jobspec.spec_paths import LOADS, loaded_values, path_problems

# String fields that name no file, folder or hub entry (why, in a word each).
NOT_LOADED = {
    "name": "label",
    "model.revision": "hub revision of the model id",
    "data.labels.*": "label",
    "evaluation.ood_sets.*": "set name",
}
LOOKS_LOADED = re.compile(r"path|hub|file|dir|model|url|tokenizer|checkpoint|source", re.I)


def _resolve(schema: dict, defs: dict) -> dict:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def string_fields(schema: dict, defs: dict, loc: str = "") -> dict[str, dict]:
    """loc (dots; `*` for list items and dict values) -> the schema of each string leaf."""
    schema = _resolve(schema, defs)
    found: dict[str, dict] = {}
    for option in schema.get("anyOf", []):
        option = _resolve(option, defs)
        if option.get("type") == "string":
            found[loc] = {**option, **{k: v for k, v in schema.items() if k != "anyOf"}}
        else:
            found.update(string_fields(option, defs, loc))
    if schema.get("type") == "string" and "enum" not in schema and "const" not in schema:
        found[loc] = schema
    for name, prop in schema.get("properties", {}).items():
        found.update(string_fields(prop, defs, f"{loc}.{name}" if loc else name))
    if isinstance(schema.get("items"), dict):
        found.update(string_fields(schema["items"], defs, f"{loc}.*"))
    if isinstance(schema.get("additionalProperties"), dict):
        found.update(string_fields(schema["additionalProperties"], defs, f"{loc}.*"))
    return found


def schema_fields() -> dict[str, dict]:
    schema = JobSpec.model_json_schema()
    return string_fields(schema, schema.get("$defs", {}))


def marked_fields() -> dict[str, str]:
    return {loc: s[LOADS] for loc, s in schema_fields().items() if LOADS in s}


def test_every_path_like_field_of_the_schema_is_marked():
    fields = schema_fields()
    assert len(fields) > 15  # the walk went through the whole spec
    unmarked = {
        loc
        for loc, s in fields.items()
        if LOADS not in s
        and loc not in NOT_LOADED
        and (
            LOOKS_LOADED.search(loc.rsplit(".", 1)[-1])
            or re.search(r"local|hub|file|director", s.get("description", ""), re.I)
        )
        and not loc.endswith(("label_map.*", "columns.text_a", "columns.text_b"))
        and ".columns." not in loc
    }
    assert unmarked == set(), "mark these with json_schema_extra=loads(kind) or list them"
    assert set(marked_fields().values()) == {"file", "model", "hub_dataset"}


FULL = {
    "task": "custom",
    "model": {"name_or_path": "/roots/model"},
    "data": {
        "labels": ["a", "b"],
        "train": {"format": "custom", "path": "/roots/train.csv"},
        "dev": {"format": "custom", "hub": "org/pairs/default:validation"},
        "ood": {"set": {"format": "hans_tsv", "path": "/roots/hans.tsv", "metric": "hans"}},
        "ood_training": {"sources": [{"format": "hans_tsv", "path": "/roots/hans_train.tsv"}]},
    },
    "debias": {
        "loss": "conf_reg",
        "bias": {"source": "file", "path": "/roots/bias.jsonl"},
        "teacher": {"source": "file", "path": "/roots/teacher.jsonl"},
    },
}


def _pattern(loc: tuple) -> str:
    return ".".join("*" if isinstance(p, int) or p == "set" else str(p) for p in loc)


def _swap_locations(value):
    """FULL with every source's path given as a hub id and the other way round."""
    if isinstance(value, dict):
        if "format" in value and ("path" in value or "hub" in value):
            rest = {k: v for k, v in value.items() if k not in ("path", "hub")}
            return {**rest, **({"hub": "org/x:train"} if "path" in value else {"path": "/r/x"})}
        return {k: _swap_locations(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_locations(v) for v in value]
    return value


def test_the_checks_visit_every_marked_field():
    spec = JobSpec.model_validate(FULL)
    swapped = JobSpec.model_validate(_swap_locations(FULL))
    visited = {_pattern(loc): kind for s in (spec, swapped) for loc, kind, _ in loaded_values(s)}
    assert visited == marked_fields()
    # Under the roots: nothing refused; no roots: every local path refused, the hub id not.
    assert path_problems(spec, ["/roots"]) == []
    refused = {_pattern(loc) for loc, _, _ in path_problems(spec, [])}
    assert refused == {loc for loc, kind in marked_fields().items() if kind != "hub_dataset"} - {
        "data.dev.path"
    }


@pytest.mark.parametrize(
    "where, value",
    [
        (("model", "name_or_path"), "a/b/c"),
        (("model", "name_or_path"), "models dir"),
        (("model", "name_or_path"), "C:\\models"),
        (("model", "name_or_path"), "..hidden"),
        (("data", "train", "path"), "sample:../../etc/passwd"),
        (("data", "train", "path"), "sample:/etc/passwd"),
        (("data", "train", "path"), "/data/x\x00.json"),
        (("data", "train", "hub"), "../../secret:train"),
        (("data", "train", "hub"), "/etc/passwd:train"),
        (("data", "train", "hub"), "a/b/c/d:train"),
        (("data", "train", "hub"), "glue/mnli"),
        (("data", "train", "hub"), "glue/..:train"),
    ],
)
def test_values_of_no_known_shape_are_refused_naming_the_field(where, value):
    body: dict = {}
    node = body
    for part in where[:-1]:
        node = node.setdefault(part, {})
    if where[0] == "data":
        node["format"] = "pair_json"
    node[where[-1]] = value
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(body)
    assert tuple(info.value.errors()[0]["loc"]) == where


def test_hub_shapes_are_accepted():
    for hub in ("glue/mnli:validation_matched", "hans:validation", "org/name/cfg:train"):
        JobSpec.model_validate({"data": {"train": {"format": "pair_json", "hub": hub}}})
    for model in ("bert-base-uncased", "google/bert_uncased_L-2_H-128_A-2", "./m", "/m"):
        JobSpec.model_validate({"model": {"name_or_path": model}})


@pytest.mark.parametrize("path", ["./data/t.json", "data/t.json", "~/t.json", "../t.json"])
def test_a_service_refuses_relative_paths_even_inside_its_roots(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = JobSpec.model_validate({"data": {"train": {"format": "pair_json", "path": path}}})
    ((loc, _raw, why),) = path_problems(spec, [str(tmp_path)])
    assert loc == ("data", "train", "path") and "absolute" in why


def test_a_symlink_out_of_the_roots_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to("/etc")
    spec = JobSpec.model_validate({"model": {"name_or_path": str(root / "link")}})
    assert [loc for loc, _, _ in path_problems(spec, [str(root)])] == [("model", "name_or_path")]


def test_a_hub_model_id_never_loads_a_folder_of_the_working_directory(tmp_path, monkeypatch):
    from srcore.models import ModelNotFoundError, resolve_model_path

    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("bert-base-uncased") == "bert-base-uncased"
    (tmp_path / "bert-base-uncased").mkdir()
    with pytest.raises(ModelNotFoundError, match=r"write \./bert-base-uncased"):
        resolve_model_path("bert-base-uncased")
    assert resolve_model_path("./bert-base-uncased") == "./bert-base-uncased"


def test_a_hub_dataset_id_never_loads_a_local_path(tmp_path, monkeypatch):
    from srcore.data.errors import DataFormatError
    from srcore.data.loaders import load_split
    from srcore.jobspec.spec import SourceSpec

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pairs").mkdir()
    (Path("pairs") / "train.json").write_text("{}")
    with pytest.raises(DataFormatError, match="working directory"):
        load_split(SourceSpec(format="pair_json", hub="pairs:train"), ("a", "b"), "t")


def _loop(folder: Path) -> Path:
    """a → b → a under `folder`: resolving either raises RuntimeError in pathlib."""
    (folder / "a").symlink_to(folder / "b")
    (folder / "b").symlink_to(folder / "a")
    return folder / "a"


@pytest.mark.parametrize("below", ["", "/model", "/deeper/config.json"])
def test_a_symlink_loop_is_refused_naming_the_field_not_raised(tmp_path, below):
    """Issue 19 item 13: Path.resolve() raised RuntimeError on a loop (a 500 at the API)."""
    loop = _loop(tmp_path)
    body = {
        "model": {"name_or_path": f"{loop}{below}"},
        "data": {"train": {"format": "pair_json", "path": f"{loop}{below}"}},
    }
    spec = JobSpec.model_validate(body)
    problems = path_problems(spec, [str(tmp_path)])
    assert [loc for loc, _, _ in problems] == [("model", "name_or_path"), ("data", "train", "path")]
    assert all(why == "the path runs into a symlink loop" for _, _, why in problems)


def test_a_path_component_no_file_system_takes_is_a_spec_error(tmp_path):
    """Issue 19 item 15: a 300-byte component was retried 3 times as a transient OSError."""
    long_path = f"{tmp_path}/{'x' * 300}/train.json"
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"data": {"train": {"format": "pair_json", "path": long_path}}})
    error = info.value.errors()[0]
    assert tuple(error["loc"]) == ("data", "train", "path")
    assert "longer than 255 bytes" in error["msg"] and "300 bytes" in error["msg"]
    with pytest.raises(ValidationError, match="longer than 255 bytes"):
        JobSpec.model_validate({"model": {"name_or_path": "/m/" + "é" * 128}})  # 256 bytes
    JobSpec.model_validate({"model": {"name_or_path": "/m/" + "x" * 255}})  # the limit itself


def test_the_refusal_names_the_variable_a_lab_sets(tmp_path):
    spec = JobSpec.model_validate({"model": {"name_or_path": "/etc"}})
    ((_, _, why),) = path_problems(spec, [str(tmp_path)])
    assert why == f"not under SRNET_DATA_ROOTS ({tmp_path})"
