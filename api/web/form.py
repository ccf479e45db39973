"""The submit form's fields, read from the job spec's JSON schema (`JobCreate`): one entry per
leaf of the spec with its default, constraints and a short explanation.

The schema is the only source: every explanation is the `description` of the field in
`srcore/spec.py`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Literal

from api.jobs.schemas import JobCreate

FieldKind = Literal[
    "enum",
    "boolean",
    "integer",
    "number",
    "string",
    "integer_list",
    "number_list",
    "string_list",
    "json",
]

GROUPS: dict[str, str] = {
    "": "Job",
    "model": "Model",
    "data": "Data",
    "debias": "Debiasing",
    "pruning": "Pruning",
    "dense": "Dense fine-tune",
    "training": "Search training",
    "evaluation": "Evaluation",
    "export": "Export",
}


@dataclass(frozen=True)
class FormField:
    path: str  # dotted path in the spec
    group: str  # top-level section ("" for the job's own fields)
    label: str
    kind: FieldKind
    nullable: bool
    default: Any
    description: str
    options: list[Any] = field(default_factory=list)  # enum values
    constraints: dict[str, Any] = field(default_factory=dict)
    # What leaving the field unset means, in words ("10 evaluations per stage"): the
    # description's "Not set: …" sentence. The form shows it as the default.
    unset: str | None = None


UNSET = "Not set: "


def unset_text(description: str) -> str | None:
    """The meaning of an unset field: the description's "Not set: …" sentence."""
    _, found, text = description.partition(UNSET)
    return text.split(". ", 1)[0].strip().rstrip(".") if found else None


_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "maxProperties",
)


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    target = defs[ref.rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in schema.items() if k != "$ref"}}


def _split_nullable(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    branches = schema.get("anyOf")
    if not branches:
        return schema, False
    others = [b for b in branches if b.get("type") != "null"]
    nullable = len(others) < len(branches)
    if len(others) == 1:
        return {**others[0], **{k: v for k, v in schema.items() if k != "anyOf"}}, nullable
    return {"type": "json"}, nullable


def _kind(schema: dict[str, Any]) -> FieldKind:
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if kind in ("boolean", "integer", "number", "string"):
        return kind
    if kind == "array":
        item = schema.get("items", {})
        item_kind = item.get("type")
        if item_kind in ("integer", "number", "string") and "enum" not in item:
            return f"{item_kind}_list"  # type: ignore[return-value]
    return "json"


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    found = {k: schema[k] for k in _CONSTRAINTS if k in schema}
    item = schema.get("items")
    if isinstance(item, dict):
        found.update({f"item_{k}": item[k] for k in _CONSTRAINTS if k in item})
    return found


def _label(path: str) -> str:
    """The path inside its section, in words: "debias.bias.source" -> "bias source"."""
    inner = path.split(".", 1)[1] if "." in path else path
    return inner.replace(".", " ").replace("_", " ")


def _walk(
    properties: dict[str, Any],
    defaults: dict[str, Any] | None,
    prefix: str,
    defs: dict[str, Any],
    out: list[FormField],
) -> None:
    for name, raw in properties.items():
        path = prefix + name
        has_own_default = "default" in raw
        default = raw.get("default") if has_own_default else (defaults or {}).get(name)
        inner, nullable = _split_nullable(_resolve(raw, defs))
        inner = _resolve(inner, defs)
        if inner.get("type") == "object" and "properties" in inner and not nullable:
            _walk(inner["properties"], default, path + ".", defs, out)
            continue
        kind = _kind(inner)
        description = raw.get("description", "")
        out.append(
            FormField(
                path=path,
                group=path.split(".", 1)[0] if "." in path else "",
                label=_label(path),
                kind=kind,
                nullable=nullable,
                default=default,
                description=description,
                options=list(inner.get("enum", [])),
                constraints=_constraints(inner),
                unset=unset_text(description) if default is None else None,
            )
        )


@lru_cache(maxsize=1)
def form_fields() -> tuple[FormField, ...]:
    schema = JobCreate.model_json_schema()
    out: list[FormField] = []
    _walk(schema["properties"], None, "", schema.get("$defs", {}), out)
    return tuple(out)


def form_description() -> dict[str, Any]:
    """What the submit page renders: the sections, then every field."""
    return {
        "groups": [{"id": key, "title": title} for key, title in GROUPS.items()],
        "fields": [asdict(f) for f in form_fields()],
    }
