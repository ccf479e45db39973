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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from srcore.jobspec.layout import OutputLayout, artifact_names

History = list[dict[str, Any]]  # trainer evaluations: {"step", "metrics", "train_loss", "info"}

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


def evaluation_payload(entry: dict[str, Any]) -> dict[str, Any]:
    """One history entry as the flat payload `Callbacks.on_metrics` gets: the sets' metrics,
    what the pruning hooks recorded (e.g. sparsity), and the training loss."""
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
    def curve(self) -> CurveId:
        return CurveId(stage="dense", seed=self.seed, loss=self.loss)


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
    spec: dict[str, Any]
    spec_hash: str
    task: str
    labels: list[str]
    selection_metric: str
    data: dict[str, Any]  # sizes of the sets read
    bias: dict[str, Any] | None  # the bias model's report
    dense: list[DensePoint]
    units: list[ResultUnit]  # "results" in metrics.json
    summary: list[dict[str, Any]]  # mean and spread over seeds per sparsity
    versions: dict[str, str]
    precision: dict[str, Any] | None = None
    # where it ran: srcore.training.device.describe_device (GPU name, UUID, memory, ...)
    device: dict[str, Any] | None = None
    seconds: float

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
