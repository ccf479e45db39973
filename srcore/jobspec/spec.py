"""The job spec: one pydantic model, used by the API, the worker and `srnet search`.

This module must stay importable without torch (the API imports it).
Defaults follow the paper's settings (batch 32, length 128, mask training 5 epochs at lr 5e-5,
dense fine-tuning 3 epochs); the bundled quick-start spec shrinks them for a CPU.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from srcore.jobspec.canonical import canonical_hash
from srcore.jobspec.names import LossName, MethodName, MetricName, loss_needs
from srcore.jobspec.spec_paths import LoadKind, load_problem, loads

TaskName = Literal["mnli", "qqp", "fever", "custom"]
ScenarioName = Literal["finetuned", "pretrained_retrain", "pretrained_frozen"]
StructureName = Literal["unstructured", "ffn_neurons", "ffn_neurons+heads"]
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
# Upper bounds of counts: far above any real job (MNLI has 393k training pairs; the paper's
# mask training 61k steps), far below what breaks a database column or a float.
MAX_STEPS = 10_000_000
MAX_EXAMPLES = 100_000_000
PathStr = Annotated[str, Field(min_length=1, max_length=1024)]


def _num(value: float) -> str:
    return f"{value:,}".replace(",", "_") if isinstance(value, int) else f"{value:g}"


def _bound_text(schema: dict[str, Any]) -> str | None:
    """`0 < x ≤ 100` from a number schema's bounds (None: it has none)."""
    low = next(((k, schema[k]) for k in ("exclusiveMinimum", "minimum") if k in schema), None)
    high = next(((k, schema[k]) for k in ("exclusiveMaximum", "maximum") if k in schema), None)
    if low is None and high is None:
        return None
    text = "x"
    if low is not None:
        text = f"{_num(low[1])} {'<' if low[0] == 'exclusiveMinimum' else '≤'} x"
    if high is not None:
        text += f" {'<' if high[0] == 'exclusiveMaximum' else '≤'} {_num(high[1])}"
    return text


def _state_bounds(schema: dict[str, Any], _cls: type) -> None:
    """Every number field's description ends with its range (from the schema's own bounds)."""
    for prop in schema.get("properties", {}).values():
        options = [prop, *prop.get("anyOf", [])]
        options += [o["items"] for o in list(options) if isinstance(o.get("items"), dict)]
        numbers = [o for o in options if o.get("type") in ("integer", "number")]
        bounds = next((b for b in map(_bound_text, numbers) if b), None)
        if bounds and "description" in prop and "Range:" not in prop["description"]:
            each = (
                " (each)"
                if any(o is not prop and "items" in o for o in options) or ("items" in prop)
                else ""
            )
            prop["description"] = f"{prop['description']} Range{each}: {bounds}."


def _no_nul(value: Any) -> Any:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain a NUL byte")
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _no_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _no_nul(item)
    return value


def percentage_hint(value: Any) -> str | None:
    """For a sparsity written as a percentage (50, 50.0, "50", "50%"): the message giving the
    fraction to write; None for anything else (the field's own checks speak for that)."""
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%"))
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        percent, number = False, float(value)
    else:
        return None
    # Bare numbers: whole ones from 2 to 100 read as percentages (1.5 is more likely a typo
    # than 1.5%: the field's own "less than 1" answers it).
    if not percent and not (number.is_integer() and 1 < number <= 100):
        return None
    if not 0 < number < 100:
        return f"sparsities are fractions between 0 and 1 (got {value!r})"
    return f"sparsities are fractions: write {number / 100:g} for {number:g}% (got {value!r})"


class StrictModel(BaseModel):
    """Unknown keys refused; numbers finite (no NaN, Infinity, 1e309) and bounded (the range in
    each description); no string holds a NUL byte (lone surrogates are not valid strings)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, json_schema_extra=_state_bounds
    )

    @field_validator("*", mode="after")
    @classmethod
    def _strings_without_nul(cls, value: Any) -> Any:
        return _no_nul(value)


def _check_load(kind: LoadKind, value: str | None) -> str | None:
    """The one rule of fields that name something to load (srcore.jobspec.spec_paths)."""
    if value is not None:
        problem = load_problem(kind, value)
        if problem is not None:
            raise ValueError(problem)
    return value


class ColumnMap(StrictModel):
    """Which columns of a custom file hold the pair, the label and the example id."""

    text_a: ShortStr = Field(default="text_a", description="Column of the first text (premise).")
    text_b: ShortStr = Field(
        default="text_b",
        description="Column of the second text (absent from the file: single-sentence).",
    )
    label: ShortStr = Field(default="label", description="Column of the gold label.")
    id: ShortStr | None = Field(
        default=None, description="Column of the example id. Not set: the line number."
    )


class SourceSpec(StrictModel):
    """Where one split comes from: a local file in a known format, or a `datasets` hub id."""

    format: FormatName = Field(
        description="File format (custom: CSV / TSV / JSONL with a column mapping)."
    )
    path: PathStr | None = Field(
        default=None,
        description="Local file. `sample:<relative path>` names a file bundled with srnet. "
        "A service reads only absolute paths under its DATA_ROOTS.",
        json_schema_extra=loads("file"),
    )
    hub: ShortStr | None = Field(
        default=None,
        description="`datasets` hub id as `name[/config]:split` or `owner/name/config:split` "
        "(online only; never a local path).",
        json_schema_extra=loads("hub_dataset"),
    )
    columns: ColumnMap | None = Field(default=None, description="Column mapping (format custom).")
    label_map: dict[ShortStr, ShortStr] | None = Field(
        default=None, max_length=64, description="Rename raw labels before the label check."
    )

    @field_validator("path")
    @classmethod
    def _path_rule(cls, value: str | None) -> str | None:
        return _check_load("file", value)

    @field_validator("hub")
    @classmethod
    def _hub_rule(cls, value: str | None) -> str | None:
        return _check_load("hub_dataset", value)

    @model_validator(mode="after")
    def _one_location(self) -> SourceSpec:
        if (self.path is None) == (self.hub is None):
            raise ValueError("give exactly one of `path` or `hub`")
        if self.format == "custom" and self.columns is None and self.path is not None:
            object.__setattr__(self, "columns", ColumnMap())
        return self


class EvalSourceSpec(SourceSpec):
    metric: MetricName = Field(
        default="accuracy", description="How the set is scored (accuracy, f1, hans, paws, ...)."
    )


class OODTrainingSpec(StrictModel):
    """The paper's OOD upper bound: OOD training data mixed into the training set."""

    sources: list[SourceSpec] = Field(
        default_factory=list, max_length=8, description="OOD training sets to mix in."
    )
    max_examples: Annotated[int, Field(ge=1, le=MAX_EXAMPLES)] | None = Field(
        default=None,
        description="Keep a seeded random sample (seed 0) of at most this many rows of each "
        "source, before duplication. Not set: every row.",
    )
    duplication: Annotated[int, Field(ge=1, le=100)] = Field(
        default=1, description="Copies of each OOD training example added to the training set."
    )
    label_map: dict[ShortStr, ShortStr] | None = Field(
        default=None,
        max_length=64,
        description="Map OOD labels to task labels (HANS non-entailment -> contradiction).",
    )


class DataSpec(StrictModel):
    train: SourceSpec | None = Field(
        default=None,
        description="JSON source object (format, path or hub). Not set: the task's bundled sample.",
    )
    dev: SourceSpec | None = Field(
        default=None,
        description="JSON source object of the ID dev set (used for selection). Not set: the "
        "task's.",
    )
    labels: list[ShortStr] | None = Field(
        default=None,
        min_length=2,
        max_length=64,
        description="Label order (custom tasks). Not set: the task's.",
    )
    ood: dict[ShortStr, EvalSourceSpec] | None = Field(
        default=None,
        max_length=16,
        description='JSON {"name": {format, path, metric}}: extra or replacement OOD sets. '
        "Not set: the task's.",
    )
    max_train_examples: Annotated[int, Field(ge=8, le=MAX_EXAMPLES)] | None = Field(
        default=None,
        description="Use at most this many training examples (quick runs). Not set: all.",
    )
    max_eval_examples: Annotated[int, Field(ge=8, le=MAX_EXAMPLES)] | None = Field(
        default=None,
        description="Evaluate on at most this many examples per set (quick runs). Not set: all.",
    )
    ood_training: OODTrainingSpec | None = Field(
        default=None,
        description="JSON: OOD training data mixed in (the paper's OOD upper bound). Not set: "
        "none.",
    )


class BiasSpec(StrictModel):
    source: Literal["auto", "file"] = Field(
        default="auto",
        description="auto: the task's own bias model (lexical overlap, claim-only) trained here.",
    )
    path: PathStr | None = Field(
        default=None,
        description="JSONL/TSV/.npy of per-example probabilities (source file only).",
        json_schema_extra=loads("file"),
    )
    fit: Literal["out_of_fold", "in_sample"] = Field(
        default="out_of_fold",
        description="source auto: out_of_fold (default: 5-fold cross-fitting, each training "
        "example's probabilities from a model that never saw it) or in_sample (one model "
        "fitted on all training rows predicts those same rows).",
    )
    class_weight: Literal["none", "balanced"] = Field(
        default="none",
        description="source auto: scikit-learn's class_weight of the bias logistic regression. "
        "none (default, as Clark et al. 2019 / Utama et al. 2020); balanced weighs classes "
        "equally (for MNLI's 2-way overlap model: entailment vs non-entailment).",
    )

    @field_validator("path")
    @classmethod
    def _path_rule(cls, value: str | None) -> str | None:
        return _check_load("file", value)

    @model_validator(mode="after")
    def _path_for_file(self) -> BiasSpec:
        if self.source == "file" and self.path is None:
            raise ValueError("`path` is required when source is 'file'")
        if self.source == "auto" and self.path is not None:
            raise ValueError("`path` is only read when source is 'file'")
        if self.source == "file":
            changed = [
                f"{name}={getattr(self, name)!r}"
                for name, default in (("fit", "out_of_fold"), ("class_weight", "none"))
                if getattr(self, name) != default
            ]
            if changed:
                raise ValueError(
                    f"{', '.join(changed)}: fit and class_weight shape the bias model trained "
                    "here (source 'auto'); a bias file (source 'file') is read as given"
                )
        return self


class TeacherSpec(StrictModel):
    source: Literal["dense", "file", "none"] = Field(
        default="dense", description="dense: the pipeline's CE fine-tuned model is the teacher."
    )
    path: PathStr | None = Field(
        default=None,
        description="File of teacher probabilities (teacher source file only).",
        json_schema_extra=loads("file"),
    )

    @field_validator("path")
    @classmethod
    def _path_rule(cls, value: str | None) -> str | None:
        return _check_load("file", value)

    @model_validator(mode="after")
    def _path_for_file(self) -> TeacherSpec:
        if self.source == "file" and self.path is None:
            raise ValueError("`path` is required when source is 'file'")
        return self


class DebiasSpec(StrictModel):
    loss: LossName = Field(
        default="none",
        description="none (cross-entropy), poe (product of experts), reweight, conf_reg.",
    )
    bias: BiasSpec = Field(
        default=BiasSpec(), description="The bias model read by poe, reweight and conf_reg."
    )
    teacher: TeacherSpec = Field(default=TeacherSpec(), description="The teacher of conf_reg.")


class PruningSpec(StrictModel):
    method: MethodName = Field(
        default="mask_training",
        description="mask_training (learned scores), imp (iterative magnitude), magnitude.",
    )
    scenario: ScenarioName = Field(
        default="finetuned",
        description="1 finetuned, 2 pretrained_retrain, 3 pretrained_frozen (no weight trained).",
    )
    sparsities: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field(
        default_factory=lambda: [0.5],
        min_length=1,
        max_length=9,
        description="Target fractions of pruned weights per matrix, e.g. 0.5, 0.7, 0.9.",
    )
    structure: StructureName = Field(
        default="unstructured",
        description="unstructured (any weight of every matrix), ffn_neurons (whole FFN "
        "neurons, the same count in every layer: sparsities are fractions of neurons and the "
        "checkpoint has a smaller intermediate_size), or ffn_neurons+heads (also that "
        "fraction of the attention heads of every layer, zeroed in the checkpoint).",
    )
    schedule: Literal["constant", "gradual"] = Field(
        default="constant",
        description="constant, or gradual (cubic, from initial_sparsity; mask_training).",
    )
    initial_sparsity: Annotated[float, Field(ge=0.0, lt=1.0)] | None = Field(
        default=None, description="Start of the cubic schedule (gradual only). Not set: 0.7."
    )
    init: Literal["hard", "soft"] | None = Field(
        default=None,
        # The schema states no default of its own: it depends on the method (the parent's
        # default, mask training, shows soft), as with the default factory it had before.
        json_schema_extra=lambda schema: schema.pop("default", None),
        description="Score init of mask_training: hard magnitude (0 / 2τ) or soft (|W|). Not "
        "set: soft for mask_training (at the step budgets the studies measured, hard scores "
        "never cross τ); other methods have no scores, so none.",
    )
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.01,
        description="τ of mask training: a weight is kept where its score exceeds it.",
    )
    mask_classifier: bool = Field(
        default=True,
        description="Mask training also prunes the classifier weight (unstructured only: "
        "ffn_neurons prunes FFN neurons, never the classifier).",
    )
    imp_rate: Annotated[float, Field(gt=0.0, le=0.5)] = Field(
        default=0.1, description="IMP: fraction of the original weights pruned per round."
    )
    rewind: bool = Field(default=False, description="IMP: rewind BERT weights to pre-trained.")
    retrain_loss: LossName | None = Field(
        default=None, description="Loss of the scenario-2 retrain. Not set: the job's loss."
    )

    @model_validator(mode="before")
    @classmethod
    def _null_init_is_unset(cls, data: Any) -> Any:
        """`init: null` (how stored specs wrote "not set" before the default was shown) means
        the method's default, as leaving it out does."""
        if isinstance(data, dict) and "init" in data and data["init"] is None:
            return {k: v for k, v in data.items() if k != "init"}
        return data

    @field_validator("sparsities", "initial_sparsity", mode="before")
    @classmethod
    def _fractions_not_percentages(cls, value: Any) -> Any:
        """A percentage (50, "50%") is refused with the fraction to write instead (0.5): one
        grammar, fractions, and an error that says how (issue 19 item 10)."""
        for item in value if isinstance(value, list) else [value]:
            hint = percentage_hint(item)
            if hint is not None:
                raise ValueError(hint)
        return value

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
        if self.init is None and self.method == "mask_training":
            # The method's default, shown in the resolved spec so a reader sees the init that
            # ran (issue 19 item 11): soft — at small step budgets hard scores (0 / 2τ) barely
            # cross τ and the search ends as magnitude pruning (docs/results.md); the paper used
            # soft for gradual. Set after validation, not by a default factory (which made any
            # other field's error come with a second one at `init`), and outside
            # model_fields_set, so a study still tells a named init from the default.
            object.__setattr__(self, "init", "soft")
        return self

    @property
    def score_init(self) -> Literal["hard", "soft"]:
        return self.init or "soft"

    @property
    def schedule_start(self) -> float:
        return 0.7 if self.initial_sparsity is None else self.initial_sparsity


class TrainingSpec(StrictModel):
    """The search stage's training (mask scores, IMP survivors, or the scenario-2 retrain)."""

    epochs: Annotated[float, Field(gt=0, le=100)] = Field(
        default=5.0, description="Epochs of the search training (paper: 5 for mask training)."
    )
    max_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = Field(
        default=None,
        description="Stop after this many steps (overrides epochs). Not set: the epochs decide.",
    )
    batch_size: Annotated[int, Field(ge=1, le=1024)] = Field(
        default=32, description="Examples per step."
    )
    learning_rate: Annotated[float, Field(gt=0, le=1.0)] | None = Field(
        default=None,
        description="Peak learning rate (AdamW, linear warm-up and decay). Not set: 5e-5, "
        "the paper's rate, for mask scores and IMP survivors (a budget-scaled score rate "
        "scrambled the masks in the studies: docs/results.md).",
    )
    weight_decay: Annotated[float, Field(ge=0, le=1.0)] = Field(
        default=0.0, description="AdamW weight decay."
    )
    warmup_ratio: Annotated[float, Field(ge=0, lt=1.0)] = Field(
        default=0.06, description="Fraction of the steps spent warming the learning rate up."
    )
    grad_clip: Annotated[float, Field(gt=0, le=1e4)] | None = Field(
        default=1.0, description="Clip the gradient norm to this; none: no clipping."
    )
    max_length: Annotated[int, Field(ge=8, le=512)] = Field(
        default=128, description="Tokens per example pair (longer pairs are truncated)."
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description="Matrix products of training and evaluation. auto: bf16 where the "
        "hardware multiplies bf16 natively (CUDA compute capability 8.0+, CPUs with AMX or "
        "AVX512-BF16), else fp32. Weights, optimizer state, masks and scores stay fp32. bf16 "
        "on a GPU below compute capability 8.0 (no bf16 tensor cores) is refused.",
    )
    tf32: bool = Field(
        default=True,
        description="On GPUs of compute capability 8.0+ (Ampere and later), let fp32 matrix "
        "products run on TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation; several "
        "times faster). false: full fp32 products. No effect on CPUs.",
    )
    deterministic: bool = Field(
        default=False,
        description="Deterministic algorithms (torch.use_deterministic_algorithms, "
        "CUBLAS_WORKSPACE_CONFIG, cuDNN benchmark off): on a GPU a repeated or resumed run is "
        "then bit-identical, at some speed cost. CPU runs are bit-identical either way.",
    )
    eval_every: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = Field(
        default=None, description="Steps between evaluations. Not set: 10 evaluations per stage."
    )
    select_last_fraction: Annotated[float, Field(gt=0, le=1.0)] = Field(
        default=0.3, description="Select among evaluations in the last fraction of training."
    )
    imp_round_epochs: Annotated[float, Field(gt=0, le=100)] = Field(
        default=1.0, description="IMP: training between two prunings."
    )
    seeds: list[Annotated[int, Field(ge=0, le=2**31 - 1)]] = Field(
        default_factory=lambda: [1],
        min_length=1,
        max_length=8,
        description="One run per seed; the report gives mean and spread.",
    )

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("seeds must not repeat")
        return value


class DenseSpec(StrictModel):
    """The dense fine-tune: the start of scenario 1 and the conf_reg teacher."""

    epochs: Annotated[float, Field(gt=0, le=100)] = Field(
        default=3.0, description="Epochs of the dense fine-tune (paper: 3)."
    )
    max_steps: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = Field(
        default=None,
        description="Stop the dense fine-tune after this many steps (overrides epochs). Not set: "
        "the epochs decide.",
    )
    learning_rate: Annotated[float, Field(gt=0, le=1.0)] = Field(
        default=5e-5, description="Learning rate of the dense fine-tune."
    )
    loss: Literal["none", "job"] = Field(
        default="none", description="none: CE fine-tune; job: fine-tune with the job's loss."
    )
    stop_at_step: Annotated[int, Field(ge=1, le=MAX_STEPS)] | None = Field(
        default=None,
        description="Search from an early checkpoint of the dense fine-tune. Not set: its end.",
    )


class EvaluationSpec(StrictModel):
    ood_sets: list[ShortStr] | None = Field(
        default=None, max_length=16, description="OOD set names. Not set: all of the task's."
    )
    batch_size: Annotated[int, Field(ge=1, le=4096)] = Field(
        default=256, description="Examples per evaluation batch."
    )


class ExportSpec(StrictModel):
    """What is exported beside each checkpoint, and what is measured of it."""

    onnx: Literal["none", "fp32", "int8"] = Field(
        default="none",
        description="Also export each subnetwork as an ONNX model (ONNX Runtime; pruned heads "
        "and FFN neurons really removed): fp32, or int8 (dynamic quantization of the weights). "
        "Its accuracy on every evaluation set is recomputed from the ONNX model and recorded "
        "beside the PyTorch numbers; the folder is an artifact of its own. Needs the onnx "
        "extra on the worker. none: no ONNX model.",
    )
    measure: bool = Field(
        default=True,
        description="Measure each exported model against the dense model it came from, on the "
        "machine that exports it: bytes on disk, parameters, and CPU latency of one batch of "
        "32 × 128 tokens, 1 thread, median of 3 after a warm-up (the ONNX model too, when "
        "exported); written on the model card and in metrics.json. On by default because a "
        "speed claim should be measured, not assumed, and it is cheap beside training (about "
        "10 s per checkpoint for MiniLM, under 2 min for BERT-base). Off (tests, tiny "
        "configs): the card and metrics.json say 'not measured'.",
    )


class ModelSpec(StrictModel):
    name_or_path: PathStr = Field(
        default="all-MiniLM-L6-v2",
        description="Bundled name, hub id (`bert-base-uncased`, `org/name`) or local directory "
        "written as a path (`/abs/dir`, `./rel/dir`; a service reads only absolute paths under "
        "its DATA_ROOTS). The tokenizer is read from the same place.",
        json_schema_extra=loads("model"),
    )
    revision: ShortStr | None = Field(
        default=None,
        description="Hub revision (branch, tag or commit) of the model. Not set: the default "
        "branch.",
    )

    @field_validator("name_or_path")
    @classmethod
    def _model_rule(cls, value: str) -> str:
        _check_load("model", value)
        return value


class JobSpec(StrictModel):
    """A search job: everything needed to reproduce it."""

    name: ShortStr | None = Field(
        default=None, description="A label for you; shown in the job lists. Not set: no name."
    )
    task: TaskName = Field(
        default="mnli",
        description="Built-in task (label order, ID dev and OOD sets) or custom "
        "(give data and labels).",
    )
    model: ModelSpec = Field(default=ModelSpec(), description="The model to prune.")
    data: DataSpec = Field(
        default=DataSpec(), description="Training, dev and OOD data (defaults: the task's)."
    )
    debias: DebiasSpec = Field(
        default=DebiasSpec(), description="The debiasing loss, its bias model and teacher."
    )
    pruning: PruningSpec = Field(
        default=PruningSpec(), description="How subnetworks are searched and at what sparsity."
    )
    dense: DenseSpec = Field(default=DenseSpec(), description="The dense fine-tune.")
    training: TrainingSpec = Field(
        default=TrainingSpec(), description="The search stage's training."
    )
    evaluation: EvaluationSpec = Field(
        default=EvaluationSpec(), description="Which OOD sets are evaluated, and how."
    )
    export: ExportSpec = Field(
        default=ExportSpec(), description="ONNX export and size/latency measurement."
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> JobSpec:
        needs = loss_needs(self.debias.loss)
        if needs.teacher and self.debias.teacher.source == "none":
            raise ValueError(
                f"debias.teacher: {self.debias.loss} needs a teacher (source 'dense' or 'file')"
            )
        if self.task == "custom":
            missing = [f for f in ("train", "dev", "labels") if getattr(self.data, f) is None]
            if missing:
                raise ValueError(f"data: a custom task needs {', '.join(missing)}")
        if self.data.labels is not None and self.task != "custom":
            raise ValueError("data.labels: label order is fixed for built-in tasks")
        if not needs.bias and self.debias.bias.source == "file":
            raise ValueError(f"debias.bias: loss '{self.debias.loss}' reads no bias model")
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


def spec_hash(spec: JobSpec) -> str:
    """The job's identity: sha256 of the canonical JSON of the validated spec (defaults filled
    in, keys sorted, no whitespace, UTF-8 with non-ASCII characters as themselves). The API
    stores it with the job and the pipeline writes it into masks and reports, so a downloaded
    artifact can be matched to its job."""
    return canonical_hash(_without_late_defaults(spec.model_dump(mode="json")))


# Fields added after jobs were stored: at their default they are left out of the hash, so a
# job's (and a study folder's) identity does not change with the srcore that reads it.
_LATE_DEFAULTS: dict[tuple[str, str], Any] = {
    ("training", "tf32"): True,
    ("training", "deterministic"): False,
    ("pruning", "structure"): "unstructured",
    ("export", "onnx"): "none",
    ("export", "measure"): True,
}
# Sections added after jobs were stored: left out of the hash when nothing in them is set.
_LATE_SECTIONS = ("export",)


def _without_late_defaults(dumped: dict[str, Any]) -> dict[str, Any]:
    for (section, key), default in _LATE_DEFAULTS.items():
        part = dumped.get(section)
        if isinstance(part, dict) and key in part and part[key] == default:
            dumped[section] = {k: v for k, v in part.items() if k != key}
    for section in _LATE_SECTIONS:
        if dumped.get(section) == {}:
            del dumped[section]
    # pruning.init was stored as null where none was named (soft applied); it now shows soft.
    # A default mask-training job keeps the hash it was stored with.
    pruning = dumped.get("pruning")
    if _is_default_init(pruning):
        dumped["pruning"] = {**pruning, "init": None}
    return dumped


def _is_default_init(pruning: Any) -> bool:
    return (
        isinstance(pruning, dict)
        and pruning.get("method") == "mask_training"
        and pruning.get("init") == "soft"
    )


# The training settings a dense fine-tune depends on (the stage cache's key; the rest of
# `training` shapes the search only).
DENSE_TRAINING_FIELDS = frozenset(
    {
        "batch_size",
        "max_length",
        "weight_decay",
        "warmup_ratio",
        "grad_clip",
        "eval_every",
        "select_last_fraction",
        "precision",
    }
)


def dense_identity(spec: JobSpec) -> str:
    """A hash of what the job's dense fine-tune depends on: two jobs with the same identity
    start from the same dense model (the stage cache shares it between them)."""
    doc: dict[str, Any] = {
        "model": spec.model.model_dump(mode="json"),
        "data": spec.data.model_dump(mode="json"),
        "dense": spec.dense.model_dump(mode="json"),
        "training": spec.training.model_dump(mode="json", include=set(DENSE_TRAINING_FIELDS)),
        "tf32": spec.training.tf32,
        "eval_batch": spec.evaluation.batch_size,
    }
    if spec.dense.loss == "job":
        doc["debias"] = spec.debias.model_dump(mode="json")
    return canonical_hash(doc)


def spec_hashes(spec: JobSpec) -> frozenset[str]:
    """Every hash srcore has given this job: `spec_hash`, and for soft mask training also the
    one of a spec that named `init: "soft"` before the default was shown (an explicit soft
    and an unset init are one job now, hashed as the unset one). Study folders written then
    match their children with it."""
    dumped = spec.model_dump(mode="json")
    hashes = {spec_hash(spec)}
    if _is_default_init(dumped.get("pruning")):
        named = _without_late_defaults(spec.model_dump(mode="json"))
        named["pruning"] = {**named["pruning"], "init": "soft"}
        hashes.add(canonical_hash(named))
    return frozenset(hashes)
