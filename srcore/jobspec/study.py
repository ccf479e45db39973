"""Studies: one base job spec plus axes, expanded to a grid of ordinary jobs (the results table
over their seeds is `srcore.jobspec.study_table`).

Torch-free (the API validates and expands studies). A study's jobs share the stage cache, so a
dense model is fine-tuned once per setting and seed. Besides the grid, a study holds:
  * `rows`: extra settings outside the grid (an IMP row, a `pretrained_frozen` row), each a set
    of overrides of the base;
  * dense references: for every debiasing loss in the study, one job that fine-tunes the dense
    model with that loss and prunes it by one-shot magnitude (no training), so the table shows
    the dense model of every loss and the magnitude baseline beside the searched subnetworks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from srcore.jobspec.spec import JobSpec, _no_nul

MAX_STUDY_JOBS = 64  # grid + extra rows + dense references
AxisValue = str | int | float | bool | None | list[Any] | dict[str, Any]
PathText = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z_]+(\.[a-z_]+)*$")]


class StudyError(ValueError):
    """A study that cannot be expanded; `field` names the offending part (`axes[1]`, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Strict(BaseModel):
    """Unknown keys refused; no string (names, axis values, override keys and values) holds a
    NUL byte, as in a job spec: PostgreSQL cannot store one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _strings_without_nul(cls, value: Any) -> Any:
        return _no_nul(value)


class StudyAxis(_Strict):
    path: PathText = Field(description="A job spec field as a dotted path, e.g. `debias.loss`.")
    values: list[AxisValue] = Field(
        min_length=1, max_length=16, description="The values this axis takes, in table order."
    )


class StudyRow(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="The row's label in the table, e.g. `IMP (poe)`."
    )
    overrides: dict[PathText, AxisValue] = Field(
        max_length=16, description="Dotted spec paths and the values this row sets on the base."
    )


class StudySpec(_Strict):
    """A study: the base job spec, the axes of its grid, extra rows, dense references."""

    name: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="A label for you; shown in the study lists."
    )
    base: JobSpec = Field(description="The job spec every child starts from.")
    axes: list[StudyAxis] = Field(
        default_factory=list,
        max_length=4,
        description="Grid axes; the study runs every combination of their values.",
    )
    rows: list[StudyRow] = Field(
        default_factory=list, max_length=16, description="Extra settings outside the grid."
    )
    dense_references: bool = Field(
        default=True,
        description="Add the dense model of every debiasing loss in the study (and one-shot "
        "magnitude pruning of it) as reference rows.",
    )

    @model_validator(mode="after")
    def _distinct_axes(self) -> StudySpec:
        paths = [a.path for a in self.axes]
        for i, path in enumerate(paths):
            if path in paths[:i]:
                raise ValueError(f"axes[{i}]: `{path}` is already an axis")
            if path in ("training.seeds", "pruning.sparsities"):
                raise ValueError(
                    f"axes[{i}]: `{path}` stays inside each job (every job runs all its seeds "
                    "and sparsities): set it in `base`"
                )
        return self


Role = Literal["search", "reference"]


@dataclass(frozen=True)
class StudyChild:
    """One job of a study: its setting (the axis values / row overrides) and its spec."""

    key: str  # stable, unique within the study: e.g. "debias.loss=poe" or "row:IMP (poe)"
    label: str  # the table's row label
    role: Role
    setting: dict[str, Any]
    spec: JobSpec


# --- expansion -----------------------------------------------------------------------------


def field_paths(model: type[BaseModel] = JobSpec, prefix: str = "") -> set[str]:
    """Every dotted field path of the job spec (nested models walked)."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.add(path)
        for sub in _model_types(info.annotation):
            paths |= field_paths(sub, f"{path}.")
    return paths


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = getattr(annotation, "__args__", ()) or ()
    return [t for a in args for t in _model_types(a)]


def _set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[last] = value


def _child_spec(base: dict[str, Any], setting: Mapping[str, Any], where: str) -> JobSpec:
    doc = json.loads(json.dumps(base))
    for path, value in setting.items():
        _set_path(doc, path, value)
    try:
        return JobSpec.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"]) or "(spec)"
        shown = ", ".join(f"{p}={_show(v)}" for p, v in setting.items())
        raise StudyError(
            where, f"the job with {shown} is invalid at {loc}: {first['msg']}"
        ) from exc


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _label(setting: Mapping[str, Any]) -> str:
    return ", ".join(f"{path.rsplit('.', 1)[-1]} {_show(v)}" for path, v in setting.items())


def expand_study(study: StudySpec) -> list[StudyChild]:
    """The study's jobs: the grid, then the extra rows, then the dense references.

    Raises `StudyError` naming the axis or row whose path or value the job spec refuses, and
    when the study would exceed `MAX_STUDY_JOBS`.
    """
    known = field_paths()
    for i, axis in enumerate(study.axes):
        if axis.path not in known:
            raise StudyError(f"axes[{i}].path", _unknown_path(axis.path, known))
    for i, row in enumerate(study.rows):
        for path in row.overrides:
            if path not in known:
                raise StudyError(f"rows[{i}].overrides", _unknown_path(path, known))
    size = math.prod(len(a.values) for a in study.axes) + len(study.rows)
    if size > MAX_STUDY_JOBS:
        raise StudyError("axes", f"the study has {size} jobs; at most {MAX_STUDY_JOBS} allowed")

    base = study.base.model_dump(mode="json")
    if "init" not in study.base.pruning.model_fields_set:
        # The base's init is its method's default: each child gets its own method's (an IMP
        # row of a mask-training study has none), not the base's resolved soft.
        base["pruning"]["init"] = None
    children: list[StudyChild] = []
    for setting in _grid(study.axes):
        where = _axis_of_error(study.axes, base, setting)
        spec = _child_spec(base, setting, where)
        key = "; ".join(f"{p}={_show(v)}" for p, v in setting.items()) or "base"
        children.append(StudyChild(key, _label(setting) or "base", "search", setting, spec))
    for i, row in enumerate(study.rows):
        spec = _child_spec(base, row.overrides, f"rows[{i}]")
        children.append(StudyChild(f"row:{row.name}", row.name, "search", row.overrides, spec))
    if study.dense_references:
        children.extend(_references(study.base, children))
    keys = [c.key for c in children]
    if len(set(keys)) != len(keys):
        raise StudyError("rows", "two rows have the same name")
    if len(children) > MAX_STUDY_JOBS:
        raise StudyError(
            "axes",
            f"the study has {len(children)} jobs with its dense references; "
            f"at most {MAX_STUDY_JOBS} allowed",
        )
    return children


def _unknown_path(path: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(path, sorted(known), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(f'`{c}`' for c in close)}?)" if close else ""
    return f"`{path}` is not a job spec field{hint}"


def _grid(axes: Sequence[StudyAxis]) -> Iterable[dict[str, Any]]:
    settings: list[dict[str, Any]] = [{}]
    for axis in axes:
        settings = [{**s, axis.path: v} for s in settings for v in axis.values]
    return settings


def _axis_of_error(axes: Sequence[StudyAxis], base: dict[str, Any], setting: dict) -> str:
    """The first axis whose value alone makes the base invalid; else the grid as a whole."""
    for i, axis in enumerate(axes):
        try:
            _child_spec(base, {axis.path: setting[axis.path]}, f"axes[{i}]")
        except StudyError:
            return f"axes[{i}]"
    return "axes"


def _references(base: JobSpec, children: Sequence[StudyChild]) -> list[StudyChild]:
    """The dense model of every loss in the study, fine-tuned with that loss (CE: plain), with
    one-shot magnitude pruning at the base's sparsities. Same data, training and seeds as the
    base, so the stage cache shares the dense CE fine-tune with the searches."""
    losses = sorted({c.spec.debias.loss for c in children} | {"none"}, key=_loss_order)
    refs = []
    for loss in losses:
        doc = base.model_dump(mode="json")
        doc["debias"] = {**doc["debias"], "loss": loss}
        if loss == "none":
            doc["debias"]["bias"] = {"source": "auto", "path": None}
        doc["dense"] = {**doc["dense"], "loss": "none" if loss == "none" else "job"}
        doc["pruning"] = {"method": "magnitude", "sparsities": doc["pruning"]["sparsities"]}
        spec = JobSpec.model_validate(doc)
        setting = {"debias.loss": loss, "dense.loss": doc["dense"]["loss"]}
        label = f"dense {_loss_name(loss)}"
        refs.append(StudyChild(f"reference:{loss}", label, "reference", setting, spec))
    return refs


LOSS_ORDER = ("none", "poe", "reweight", "conf_reg")


def _loss_order(loss: str) -> int:
    return LOSS_ORDER.index(loss) if loss in LOSS_ORDER else len(LOSS_ORDER)


def _loss_name(loss: str) -> str:
    return "CE" if loss == "none" else loss
