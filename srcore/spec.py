"""The job spec: one pydantic model, used by the API, the worker and `srnet search`.

This module must stay importable without torch (the API imports it).
Defaults follow the paper's settings (batch 32, length 128, mask training 5 epochs at lr 5e-5,
dense fine-tuning 3 epochs); the bundled quick-start spec shrinks them for a CPU.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TaskName = Literal["mnli", "qqp", "fever", "custom"]
LossName = Literal["none", "poe", "reweight", "conf_reg"]
MethodName = Literal["mask_training", "imp", "magnitude"]
ScenarioName = Literal["finetuned", "pretrained_retrain", "pretrained_frozen"]
MetricName = Literal["accuracy", "f1", "hans", "paws", "fever_symmetric"]
FormatName = Literal[
    "glue_mnli_tsv",  # official GLUE MNLI train/dev TSV
    "mnli_dev_tsv",  # index, premise, hypothesis, gold_label, ... (dev_matched copy)
    "pair_json",  # {"0": {"text_a", "text_b", "label"}} subsets
    "hans_tsv",  # official HANS evaluation/train TSV
    "glue_qqp_tsv",  # id, qid1, qid2, question1, question2, is_duplicate
    "paws_tsv",  # PAWS id, sentence1, sentence2, label (b'...' literals allowed)
    "fever_nli_jsonl",  # claim, evidence, gold_label
    "fever_symmetric_v1",  # id, label, claim, evidence_sentence
    "fever_symmetric_v2",  # claim, evidence, gold_label, ...
    "custom",  # CSV / TSV / JSONL with a column mapping
]

ShortStr = Annotated[str, Field(max_length=200)]
PathStr = Annotated[str, Field(min_length=1, max_length=1024)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnMap(StrictModel):
    """Which columns of a custom file hold the pair, the label and the example id."""

    text_a: ShortStr = "text_a"
    text_b: ShortStr = "text_b"
    label: ShortStr = "label"
    id: ShortStr | None = None


class SourceSpec(StrictModel):
    """Where one split comes from: a local file in a known format, or a `datasets` hub id."""

    format: FormatName
    path: PathStr | None = Field(
        default=None,
        description="Local file. `sample:<relative path>` names a file bundled with srnet.",
    )
    hub: ShortStr | None = Field(
        default=None, description="`datasets` hub id as `name[/config]:split` (online only)."
    )
    columns: ColumnMap | None = Field(default=None, description="Column mapping (format custom).")
    label_map: dict[ShortStr, ShortStr] | None = Field(
        default=None, max_length=64, description="Rename raw labels before the label check."
    )

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` or `hub`")
        if self.format == "custom" and self.columns is None and self.path is not None:
            object.__setattr__(self, "columns", ColumnMap())
        return self


class EvalSourceSpec(SourceSpec):
    metric: MetricName = "accuracy"


class OODTrainingSpec(StrictModel):
    """The paper's OOD upper bound: OOD training data mixed into the training set."""

    sources: list[SourceSpec] = Field(default_factory=list, max_length=8)
    duplication: Annotated[int, Field(ge=1, le=100)] = 1
    label_map: dict[ShortStr, ShortStr] | None = Field(
        default=None,
        max_length=64,
        description="Map OOD labels to task labels (HANS non-entailment -> contradiction).",
    )


class DataSpec(StrictModel):
    train: SourceSpec | None = Field(default=None, description="None: the task's default.")
    dev: SourceSpec | None = Field(default=None, description="ID dev set used for selection.")
    labels: list[ShortStr] | None = Field(
        default=None, min_length=2, max_length=64, description="Label order (custom tasks)."
    )
    ood: dict[ShortStr, EvalSourceSpec] | None = Field(
        default=None, max_length=16, description="Extra or replacement OOD sets by name."
    )
    max_train_examples: Annotated[int, Field(ge=8)] | None = None
    max_eval_examples: Annotated[int, Field(ge=8)] | None = None
    ood_training: OODTrainingSpec | None = None


class BiasSpec(StrictModel):
    source: Literal["auto", "file"] = Field(
        default="auto",
        description="auto: the task's own bias model (lexical overlap, claim-only) trained here.",
    )
    path: PathStr | None = Field(
        default=None, description="JSONL/TSV/.npy of per-example probabilities (source file)."
    )

    @model_validator(mode="after")
    def _path_for_file(self) -> BiasSpec:
        if self.source == "file" and self.path is None:
            raise ValueError("`path` is required when source is 'file'")
        if self.source == "auto" and self.path is not None:
            raise ValueError("`path` is only read when source is 'file'")
        return self


class TeacherSpec(StrictModel):
    source: Literal["dense", "file", "none"] = Field(
        default="dense", description="dense: the pipeline's CE fine-tuned model is the teacher."
    )
    path: PathStr | None = None

    @model_validator(mode="after")
    def _path_for_file(self) -> TeacherSpec:
        if self.source == "file" and self.path is None:
            raise ValueError("`path` is required when source is 'file'")
        return self


class DebiasSpec(StrictModel):
    loss: LossName = "none"
    bias: BiasSpec = BiasSpec()
    teacher: TeacherSpec = TeacherSpec()


class PruningSpec(StrictModel):
    method: MethodName = "mask_training"
    scenario: ScenarioName = "finetuned"
    sparsities: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.5], min_length=1, max_length=9
    )
    schedule: Literal["constant", "gradual"] = "constant"
    initial_sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] | None = Field(
        default=None, description="Start of the cubic schedule (gradual only)."
    )
    init: Literal["hard", "soft"] | None = Field(
        default=None, description="Score init: hard magnitude (0 / 2τ) or soft (|W|)."
    )
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = 0.01
    mask_classifier: bool = True
    imp_rate: Annotated[float, Field(gt=0.0, le=0.5)] = 0.1
    rewind: bool = Field(default=False, description="IMP: rewind BERT weights to pre-trained.")
    retrain_loss: LossName | None = Field(
        default=None, description="Loss of the scenario-2 retrain; None: the job's loss."
    )

    @field_validator("sparsities")
    @classmethod
    def _sorted_unique(cls, value: list[float]) -> list[float]:
        if len(set(value)) != len(value):
            raise ValueError("sparsities must not repeat")
        return sorted(value)

    @model_validator(mode="after")
    def _combinations(self) -> PruningSpec:
        if self.schedule == "gradual":
            if self.method != "mask_training":
                raise ValueError("schedule 'gradual' is only defined for mask_training")
            start = 0.7 if self.initial_sparsity is None else self.initial_sparsity
            if start >= min(self.sparsities):
                raise ValueError("initial_sparsity must be below every target sparsity")
        elif self.initial_sparsity is not None:
            raise ValueError("initial_sparsity is only read with schedule 'gradual'")
        if self.method == "imp":
            for s in self.sparsities:
                rounds = s / self.imp_rate
                if not math.isclose(rounds, round(rounds), abs_tol=1e-6):
                    raise ValueError(
                        f"IMP reaches multiples of imp_rate={self.imp_rate}; {s} is not one"
                    )
        if self.rewind and not (self.method == "imp" and self.scenario == "pretrained_retrain"):
            raise ValueError("rewind applies to IMP in scenario 'pretrained_retrain' only")
        if self.scenario == "pretrained_frozen" and self.method != "mask_training":
            raise ValueError("scenario 'pretrained_frozen' trains no weight: use mask_training")
        if self.retrain_loss is not None and self.scenario != "pretrained_retrain":
            raise ValueError("retrain_loss applies to scenario 'pretrained_retrain' only")
        if self.init is not None and self.method != "mask_training":
            raise ValueError("init applies to mask_training only")
        return self

    @property
    def score_init(self) -> Literal["hard", "soft"]:
        if self.init is not None:
            return self.init
        return "soft" if self.schedule == "gradual" else "hard"

    @property
    def schedule_start(self) -> float:
        return 0.7 if self.initial_sparsity is None else self.initial_sparsity


class TrainingSpec(StrictModel):
    """The search stage's training (mask scores, IMP survivors, or the scenario-2 retrain)."""

    epochs: Annotated[float, Field(gt=0, le=100)] = 5.0
    max_steps: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Stop after this many steps (overrides epochs)."
    )
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    learning_rate: Annotated[float, Field(gt=0, le=1.0)] = 5e-5
    weight_decay: Annotated[float, Field(ge=0, le=1.0)] = 0.0
    warmup_ratio: Annotated[float, Field(ge=0, lt=1.0)] = 0.06
    grad_clip: Annotated[float, Field(gt=0)] | None = 1.0
    max_length: Annotated[int, Field(ge=8, le=512)] = 128
    eval_every: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Steps between evaluations; None: 10 evaluations per stage."
    )
    select_last_fraction: Annotated[float, Field(gt=0, le=1.0)] = Field(
        default=0.3, description="Select among evaluations in the last fraction of training."
    )
    imp_round_epochs: Annotated[float, Field(gt=0, le=100)] = Field(
        default=1.0, description="IMP: training between two prunings."
    )
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [1], min_length=1, max_length=8
    )

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must not repeat")
        return value


class DenseSpec(StrictModel):
    """The dense fine-tune: the start of scenario 1 and the conf_reg teacher."""

    epochs: Annotated[float, Field(gt=0, le=100)] = 3.0
    max_steps: Annotated[int, Field(ge=1)] | None = None
    learning_rate: Annotated[float, Field(gt=0, le=1.0)] = 5e-5
    loss: Literal["none", "job"] = Field(
        default="none", description="none: CE fine-tune; job: fine-tune with the job's loss."
    )
    stop_at_step: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Search from an early checkpoint of the dense fine-tune."
    )


class EvaluationSpec(StrictModel):
    ood_sets: list[ShortStr] | None = Field(
        default=None, max_length=16, description="OOD set names; None: all of the task's."
    )
    batch_size: Annotated[int, Field(ge=1, le=4096)] = 256


class ModelSpec(StrictModel):
    name_or_path: PathStr = Field(
        default="all-MiniLM-L6-v2",
        description="Bundled name, local directory or hub id (bert-base-uncased).",
    )
    revision: ShortStr | None = None


class JobSpec(StrictModel):
    """A search job: everything needed to reproduce it."""

    name: ShortStr | None = None
    task: TaskName = "mnli"
    model: ModelSpec = ModelSpec()
    data: DataSpec = DataSpec()
    debias: DebiasSpec = DebiasSpec()
    pruning: PruningSpec = PruningSpec()
    dense: DenseSpec = DenseSpec()
    training: TrainingSpec = TrainingSpec()
    evaluation: EvaluationSpec = EvaluationSpec()

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        if self.debias.loss == "conf_reg" and self.debias.teacher.source == "none":
            raise ValueError("debias.teacher: conf_reg needs a teacher (source 'dense' or 'file')")
        if self.task == "custom":
            missing = [f for f in ("train", "dev", "labels") if getattr(self.data, f) is None]
            if missing:
                raise ValueError(f"data: a custom task needs {', '.join(missing)}")
        if self.data.labels is not None and self.task != "custom":
            raise ValueError("data.labels: label order is fixed for built-in tasks")
        if self.debias.loss == "none" and self.debias.bias.source == "file":
            raise ValueError("debias.bias: loss 'none' reads no bias model")
        if self.dense.stop_at_step is not None and self.pruning.scenario != "finetuned":
            raise ValueError(
                "dense.stop_at_step: only scenario 'finetuned' starts from a dense model"
            )
        return self

    @property
    def retrain_loss(self) -> LossName:
        return self.pruning.retrain_loss or self.debias.loss


def load_spec(text: str) -> JobSpec:
    """Parse a JSON job spec (raises pydantic.ValidationError naming the field)."""
    return JobSpec.model_validate_json(text)
