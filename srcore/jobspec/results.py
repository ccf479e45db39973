"""What a search hands back: typed results, torch-free (the worker, studies and tests import
them without torch).

`run_search` emits each `DensePoint` and `ResultUnit` through the callbacks as it is ready
and returns the `SearchResult`; metrics.json is the `SearchResult` written out
(`SearchResult.report()`), and `SearchResult.read(out_dir)` reads it back.

Every evaluation belongs to one curve, named by a `CurveId`: the stage that trained (dense,
teacher, search, retrain), the seed, the curve's target sparsity, and for a dense fine-tune its
loss, for IMP the round.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from srcore.jobspec.layout import OutputLayout, artifact_names
from srcore.jobspec.spec import JobSpec

DENSE_SPARSITY = 0.0  # the dense model is the 0 % point of every sparsity curve


class ResultModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def as_json(self, **kw: Any) -> dict[str, Any]:
        return self.model_dump(mode="json", fallback=_plain, **kw)


class CurveId(ResultModel):
    """Which curve an evaluation belongs to."""

    stage: str  # "dense", "teacher" (conf_reg's CE model), "search", "retrain"
    seed: int
    sparsity: float = DENSE_SPARSITY  # the curve's target; a gradual ramp's points file here
    loss: str | None = None  # a dense fine-tune's loss (teacher and dense differ for conf_reg)
    imp_round: int | None = None  # IMP: the pruning round the evaluation trained in


# --- one evaluation, typed -------------------------------------------------------------------
#
# On disk (metrics.json histories) and in the database (Metric.payload) an evaluation is one
# flat dict: {"dev": {...}, "hans": {...}, "selection": .8, "sparsity": .5, "train_loss": .4,
# "movement": {...}}. `Evaluation.from_payload` is the one reader that tells the evaluated sets
# from the extras; everything else reads `Evaluation.sets` and its named fields.

# Payload keys that are never an evaluated set, whatever they hold.
EXTRA_KEYS = frozenset({"selection", "sparsity", "train_loss", "movement", "selectable"})
# Keys of a set's metrics that are no metric curve (counts, the collapse verdict).
SET_FLAG_KEYS = frozenset({"n", "majority_label", "majority_share", "collapsed"})
_NAMED = ("selection", "sparsity", "train_loss", "movement")  # Evaluation's own fields


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class _AsGiven(ResultModel):
    """Written back with the keys it was read with, in their order: fields it was not given
    (None by default) are not added, so a file read and written again keeps its bytes."""

    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_order(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        model = handler(data)
        if isinstance(data, Mapping):
            model._order = tuple(str(key) for key in data)
        return model

    def as_json(self, **kw: Any) -> dict[str, Any]:
        """Only the keys it was given (extras too, nested models alike), in their order."""
        data = super().as_json(exclude_unset=True, **kw)
        first = [key for key in self._order if key in data]
        return {key: data[key] for key in [*first, *(k for k in data if k not in first)]}


class HeuristicMetrics(_AsGiven):
    """HANS accuracy on one slice (all of it, or one heuristic), split by gold label."""

    accuracy: float | None = Field(None, description="Accuracy on the slice")
    entailed: float | None = Field(None, description="Accuracy on its gold-entailed pairs")
    non_entailed: float | None = Field(
        None, description="Accuracy on its gold non-entailed pairs (where biased models fail)"
    )


class SetMetrics(_AsGiven):
    """One evaluated set at one step (`srcore.evaluation.split_metrics`). The metric of the
    set's kind (accuracy; F1 too for PAWS and QQP; the HANS splits), its size, per-heuristic
    (HANS) or per-class (PAWS) parts, and the collapse verdict. A registered metric's own keys
    are kept as extras."""

    model_config = ConfigDict(frozen=True, extra="allow")

    accuracy: float | None = Field(None, description="Accuracy on the set")
    f1: float | None = Field(None, description="F1 of the positive class (PAWS, QQP)")
    n: int | None = Field(None, description="Examples evaluated")
    entailed: float | None = Field(None, description="HANS: accuracy on gold-entailed pairs")
    non_entailed: float | None = Field(
        None, description="HANS: accuracy on gold non-entailed pairs"
    )
    heuristics: dict[str, HeuristicMetrics] | None = Field(
        None, description="HANS: per heuristic (lexical_overlap, subsequence, constituent)"
    )
    per_class: dict[str, float | None] | None = Field(
        None, description="PAWS: accuracy per gold class"
    )
    majority_label: str | None = Field(None, description="The class predicted most")
    majority_share: float | None = Field(None, description="Its share of the predictions")
    collapsed: bool = Field(
        False, description="One class predicted for at least 95% of the set: not robust"
    )

    @property
    def headline(self) -> float | None:
        """The set's headline number: accuracy, else F1 (finite numbers only)."""
        accuracy = _finite(self.accuracy)
        return accuracy if accuracy is not None else _finite(self.f1)

    def numbers(self) -> dict[str, float]:
        """Its finite numbers by name, flags and `n` left out; heuristics and classes one level
        down: {"accuracy": .6, "lexical_overlap.non_entailed": .1, "entailment": .9, ...}."""
        out: dict[str, float] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, Mapping):
                for key, value in node.items():
                    if key in SET_FLAG_KEYS:
                        continue
                    # heuristics / per_class nest one level: "lexical_overlap.non_entailed"
                    inner = prefix if key in ("heuristics", "per_class") else f"{prefix}.{key}"
                    walk(inner, value)
            elif _finite(node) is not None:
                out[prefix.removeprefix(".")] = float(node)

        walk("", self.model_dump(mode="json"))
        return out


def is_set_metrics(value: Any) -> bool:
    """An evaluated set's metrics: a mapping with a numeric accuracy, F1 or size."""
    return isinstance(value, Mapping) and any(
        _finite(value.get(key)) is not None for key in ("accuracy", "f1", "n")
    )


class Evaluation(ResultModel):
    """One evaluation of a model: set name → its metrics, and the extras apart (the selection
    metric, the sparsity the pruning hooks reported, the mean training loss since the last
    evaluation, a selected mask's movement, anything else a hook recorded)."""

    model_config = ConfigDict(frozen=True)

    sets: dict[str, SetMetrics] = Field(
        description="Set name (dev, hans, paws, …) → its metrics at this step"
    )
    selection: float | None = Field(
        None, description="The ID selection metric (dev accuracy; F1 for QQP)"
    )
    sparsity: float | None = Field(None, description="The sparsity the pruning reported")
    train_loss: float | None = Field(
        None, description="Mean training loss since the previous evaluation"
    )
    movement: dict[str, Any] | None = Field(
        None, description="A selected mask's distance from magnitude pruning"
    )
    extras: dict[str, Any] = Field(
        default_factory=dict, description="Anything else recorded (e.g. selectable)"
    )
    _order: tuple[str, ...] = PrivateAttr(default=())  # the payload's key order

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Evaluation:
        """The flat payload (metrics.json history entry's fields, a Metric row's payload)."""
        sets = {
            name: SetMetrics.model_validate(value)
            for name, value in payload.items()
            if name not in EXTRA_KEYS and is_set_metrics(value)
        }
        rest = {k: v for k, v in payload.items() if k not in sets}
        named = {k: rest.pop(k) for k in _NAMED if k in rest}
        evaluation = cls(sets=sets, **named, extras=rest)
        evaluation._order = tuple(payload)
        return evaluation

    @classmethod
    def of_entry(cls, entry: Mapping[str, Any] | HistoryEntry) -> Evaluation:
        """A trainer history entry ({"step", "metrics", "train_loss", "info"})."""
        return cls.from_payload(evaluation_payload(entry))

    def payload(self) -> dict[str, Any]:
        """Back to the flat payload (the inverse of `from_payload`, keys in their order)."""
        body: dict[str, Any] = {name: m.as_json() for name, m in self.sets.items()}
        body.update(self.extras)
        for key in _NAMED:
            value = getattr(self, key)
            if value is not None or key == "train_loss":  # the trainer always records it
                body[key] = value
        first = [key for key in self._order if key in body]
        return {key: body[key] for key in [*first, *(k for k in body if k not in first)]}


def evaluated_sets(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluated sets of an evaluation (a trainer's `metrics`, or a payload), as given:
    set name → its metrics dict, "selection" and the other extras left out."""
    return {name: metrics[name] for name in Evaluation.from_payload(metrics).sets}


class HistoryEntry(ResultModel):
    """One evaluation of a trainer's history, as metrics.json stores it."""

    model_config = ConfigDict(frozen=True, extra="allow")

    step: int
    metrics: dict[str, Any]  # set name → its metrics, and "selection"
    train_loss: float | None = None
    info: dict[str, Any] = Field(default_factory=dict)  # the pruning hooks' (sparsity, ...)

    @property
    def evaluation(self) -> Evaluation:
        return Evaluation.of_entry(self)


# A trainer's evaluations in order (`srcore.training.Trainer` records them as plain dicts with
# these four keys; a result reads them typed).
History = list[HistoryEntry]


def evaluation_payload(entry: Mapping[str, Any] | HistoryEntry) -> dict[str, Any]:
    """One history entry as the flat payload `Callbacks.on_metrics` gets: the sets' metrics,
    what the pruning hooks recorded (e.g. sparsity), and the training loss."""
    if isinstance(entry, HistoryEntry):
        entry = entry.model_dump()
    return {
        **entry.get("metrics", {}),
        **(entry.get("info") or {}),
        "train_loss": entry.get("train_loss"),
    }


@dataclass(frozen=True)
class Curve:
    """A whole evaluation curve and its selected step (None: nothing was selected on it)."""

    id: CurveId
    history: History
    selected_step: int | None


class DensePoint(ResultModel):
    """The dense fine-tuned model a seed's search started from (the 0 % point)."""

    seed: int
    sparsity: float = DENSE_SPARSITY
    stage: Literal["dense"] = "dense"
    loss: str = "none"
    selected_step: int
    metrics: dict[str, Any]  # set name → metrics at the selected step
    history: History
    cached: bool  # taken from the stage cache, not trained by this job

    @property
    def sets(self) -> dict[str, SetMetrics]:
        """`metrics`, typed."""
        return {name: SetMetrics.model_validate(m) for name, m in self.metrics.items()}

    @property
    def curve(self) -> CurveId:
        return CurveId(stage="dense", seed=self.seed, loss=self.loss)


class SummaryStat(ResultModel):
    """One number over the seeds of a sparsity."""

    mean: float
    std: float  # population standard deviation; 0 for one seed
    n: int  # seeds with the number


class SummaryRow(ResultModel):
    """metrics.json `summary`: per target sparsity, each set's headline numbers over seeds."""

    sparsity: float
    seeds: list[int] = Field(default_factory=list)
    sets: dict[str, dict[str, SummaryStat]] = Field(default_factory=dict)  # set → "accuracy"/"f1"


class DenseFineTune(ResultModel):
    """What a dense fine-tune leaves in its stage-cache entry (`result.json` beside the
    weights), enough to rebuild its `DensePoint` when a later job reuses it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    FILE: ClassVar[str] = "result.json"

    loss: str
    seed: int
    selected_step: int
    selected: dict[str, Any]  # the selected evaluation: set name → metrics, and "selection"
    history: History
    total_steps: int
    examples_per_s: float
    precision: str | None = None  # what training.precision resolved to (older entries: none)

    def point(self, *, cached: bool) -> DensePoint:
        return DensePoint(
            seed=self.seed,
            loss=self.loss,
            selected_step=self.selected_step,
            metrics=evaluated_sets(self.selected),
            history=self.history,
            cached=cached,
        )

    def write(self, folder: Path) -> None:
        (folder / self.FILE).write_text(json.dumps(self.as_json(), indent=1))

    @classmethod
    def read(cls, folder: Path) -> DenseFineTune:
        return cls.model_validate_json((folder / cls.FILE).read_text())


NOT_MEASURED = "not measured"  # what a card and metrics.json say with export.measure off


class ModelSize(ResultModel):
    """One exported model on disk: its weight files' bytes and its parameters."""

    bytes: int = Field(description="Bytes of the weight files (model.safetensors, model.onnx)")
    parameters: int = Field(description="Floating-point parameters stored")


class LatencyMeasurement(ResultModel):
    """CPU latency of one forward pass, this model against the dense one, timed in turns."""

    batch: int
    length: int  # tokens per row (random ids, no padding)
    threads: int
    repeats: int  # timed turns after one warm-up; the median is kept
    cpu: str  # the machine that exported it
    dense_ms: float = Field(description="Median latency of the dense model (PyTorch)")
    ms: float = Field(description="Median latency of this model (PyTorch, plain transformers)")
    ratio: float = Field(description="ms / dense_ms: below 1 is faster than dense")
    onnx_ms: float | None = Field(None, description="The ONNX model's median, if exported")
    onnx_ratio: float | None = Field(None, description="onnx_ms / dense_ms (PyTorch dense)")


class ExportMeasurement(ResultModel):
    """A checkpoint against the dense model it came from, measured where it was exported."""

    size: ModelSize
    dense_size: ModelSize
    size_ratio: float = Field(description="size.bytes / dense_size.bytes")
    onnx_size: ModelSize | None = None
    latency: LatencyMeasurement


class OnnxResult(ResultModel):
    """The unit's ONNX model (export.onnx) and its numbers recomputed by ONNX Runtime."""

    format: Literal["fp32", "int8"]
    folder: Path  # the ONNX folder (the service publishes the archive's name instead)
    file: str  # model.onnx or model_int8.onnx inside it
    heads_per_layer: list[int]
    parameters: int
    bytes: int
    metrics: dict[str, Any]  # set name → metrics recomputed from the ONNX model
    accuracy_difference: dict[str, float | None] = Field(
        default_factory=dict,
        description="Per set: ONNX accuracy minus PyTorch accuracy, in points (×100)",
    )


class ResultUnit(ResultModel):
    """One subnetwork: a seed × target sparsity, its selected evaluation and its files."""

    seed: int
    sparsity: float
    stage: Literal["search", "retrain"]  # the training its exported weights come from
    selected_step: int
    metrics: dict[str, Any]  # set name → metrics at the selected step
    selection: float | None  # the ID selection metric there
    history: History
    search_history: History | None = None  # scenario 2: the mask's search before the retrain
    sparsity_report: dict[str, Any]
    # how far the mask moved from magnitude pruning (srcore.pruning.movement.MaskMovement)
    movement: dict[str, Any] | None = None
    mask: Path
    checkpoint: Path  # save_pretrained directory
    # size and latency against the dense model (export.measure), or NOT_MEASURED; None in
    # units written before it was measured
    measured: ExportMeasurement | Literal["not measured"] | None = None
    onnx: OnnxResult | None = None  # export.onnx other than none

    @property
    def sets(self) -> dict[str, SetMetrics]:
        """`metrics`, typed."""
        return {name: SetMetrics.model_validate(m) for name, m in self.metrics.items()}

    @property
    def curve(self) -> CurveId:
        return CurveId(stage=self.stage, seed=self.seed, sparsity=self.sparsity)

    def curves(self) -> list[Curve]:
        found = []
        if self.search_history:
            search = CurveId(stage="search", seed=self.seed, sparsity=self.sparsity)
            found.append(Curve(search, self.search_history, None))
        found.append(Curve(self.curve, self.history, self.selected_step))
        return found

    def write(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(self.as_json()))
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> ResultUnit:
        return cls.model_validate_json(path.read_text())


class SearchResult(ResultModel):
    """A finished search: everything metrics.json records, and where its files are."""

    out_dir: Path
    # The spec as it ran (every default filled in), kept as its JSON so that a later srcore
    # whose JobSpec moved on still reads the file; `job_spec` is it typed.
    spec: dict[str, Any]
    spec_hash: str
    task: str
    labels: list[str]
    selection_metric: str
    data: dict[str, Any]  # sizes of the sets read
    bias: dict[str, Any] | None  # the bias model's report
    dense: list[DensePoint]
    units: list[ResultUnit]  # "results" in metrics.json
    summary: list[SummaryRow]  # mean and spread over seeds per sparsity
    versions: dict[str, str]
    precision: dict[str, Any] | None = None
    # where it ran: srcore.training.device.describe_device (GPU name, UUID, memory, ...)
    device: dict[str, Any] | None = None
    seconds: float

    @property
    def job_spec(self) -> JobSpec:
        """`spec` validated by this srcore's JobSpec (raises if it no longer accepts it)."""
        return JobSpec.model_validate(self.spec)

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(self.out_dir)

    @property
    def metrics_path(self) -> Path:
        return self.layout.metrics_path

    @property
    def plot_path(self) -> Path:
        return self.layout.plot_path

    @property
    def masks(self) -> list[Path]:
        return [u.mask for u in self.units]

    @property
    def checkpoints(self) -> list[Path]:
        return [u.checkpoint for u in self.units]

    def curves(self) -> list[Curve]:
        """Every evaluation curve with its selected step (dense models, then the units)."""
        found = [Curve(d.curve, d.history, d.selected_step) for d in self.dense]
        for unit in self.units:
            found += unit.curves()
        return found

    def summary_json(self) -> list[dict[str, Any]]:
        """`summary` as metrics.json writes it."""
        return [row.as_json() for row in self.summary]

    def report(self) -> dict[str, Any]:
        """The content of metrics.json (local paths of masks and checkpoints)."""
        body = self.as_json(exclude={"out_dir", "units"})
        return {**body, "results": [u.as_json() for u in self.units]}

    def public_report(self, job: str) -> dict[str, Any]:
        """metrics.json as the service publishes it: units name their artifacts (`job` is the
        `job_tag` they carry), not the worker's folders."""
        body = self.report()
        for unit in body["results"]:
            names = artifact_names(job, unit["seed"], unit["sparsity"])
            unit["mask"], unit["checkpoint"] = names.mask, names.checkpoint
            if unit.get("onnx"):
                unit["onnx"]["folder"] = names.onnx
        return body

    @classmethod
    def read(cls, out_dir: Path) -> SearchResult:
        """The result of a finished search, from its metrics.json."""
        out_dir = Path(out_dir)
        body = json.loads(OutputLayout(out_dir).metrics_path.read_text())
        return cls.model_validate({**body, "units": body.get("results", []), "out_dir": out_dir})


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON-serialisable: {type(value)}")
