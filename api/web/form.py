"""The submit form's fields, read from the job spec's JSON schema (`JobCreate`): one entry per
leaf of the spec with its default, constraints and a short explanation.

The schema is the source; `FIELD_HELP` only adds an explanation where the spec's own `Field`
has no description (a description in `srcore/spec.py` always wins).
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
}

FIELD_HELP: dict[str, str] = {
    "name": "A label for you; shown in the job lists.",
    "task": "Built-in task (label order, ID dev and OOD sets) or custom (give data and labels).",
    "model.revision": "Hub revision (branch, tag or commit) of the model; None: the default.",
    "data.train": "JSON source object (format, path or hub); null: the task's bundled sample.",
    "data.dev": "JSON source object of the ID dev set; null: the task's default.",
    "data.ood": 'JSON {"name": {format, path, metric}}: extra or replacement OOD sets.',
    "data.max_train_examples": "Use at most this many training examples (quick runs).",
    "data.max_eval_examples": "Evaluate on at most this many examples per set (quick runs).",
    "data.ood_training": "JSON: OOD training data mixed in (the paper's OOD upper bound).",
    "debias.loss": "none (cross-entropy), poe (product of experts), reweight, conf_reg.",
    "debias.teacher.path": "File of teacher probabilities (teacher source file).",
    "pruning.method": "mask_training (learned scores), imp (iterative magnitude), magnitude.",
    "pruning.scenario": "1 finetuned, 2 pretrained_retrain, 3 pretrained_frozen (no weight "
    "trained).",
    "pruning.sparsities": "Target fractions of pruned weights per matrix, e.g. 0.5, 0.7, 0.9.",
    "pruning.schedule": "constant, or gradual (cubic, from initial_sparsity; mask_training).",
    "pruning.threshold": "τ of mask training: a weight is kept where its score exceeds it.",
    "pruning.mask_classifier": "Mask training also prunes the classifier weight.",
    "pruning.imp_rate": "IMP: fraction of the original weights pruned per round.",
    "dense.epochs": "Epochs of the dense fine-tune (paper: 3).",
    "dense.max_steps": "Stop the dense fine-tune after this many steps (overrides epochs).",
    "dense.learning_rate": "Learning rate of the dense fine-tune.",
    "training.epochs": "Epochs of the search training (paper: 5 for mask training).",
    "training.batch_size": "Examples per step.",
    "training.learning_rate": "Peak learning rate (AdamW, linear warm-up and decay).",
    "training.weight_decay": "AdamW weight decay.",
    "training.warmup_ratio": "Fraction of the steps spent warming the learning rate up.",
    "training.grad_clip": "Clip the gradient norm to this; null: no clipping.",
    "training.max_length": "Tokens per example pair (longer pairs are truncated).",
    "training.seeds": "One run per seed; the report gives mean and spread.",
    "evaluation.batch_size": "Examples per evaluation batch.",
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
        description = raw.get("description") or FIELD_HELP.get(path, "")
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
