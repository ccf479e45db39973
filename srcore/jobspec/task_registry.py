"""The task registry: label order, ID train/dev sets and OOD sets of each built-in task.

Torch-free. Paths starting with `sample:` name files bundled in `srcore/sample_data`; the
bundled files are real but small samples. Full data sets are given in the spec as local paths
or `datasets` hub ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from srcore.jobspec.spec import EvalSourceSpec, JobSpec, SourceSpec

BiasModelKind = Literal["overlap_2way", "overlap", "claim_only"]


@dataclass(frozen=True)
class TaskInfo:
    name: str
    labels: tuple[str, ...]
    train: SourceSpec | None
    dev: SourceSpec | None
    ood: dict[str, EvalSourceSpec] = field(default_factory=dict)
    selection_metric: Literal["accuracy", "f1"] = "accuracy"
    bias_model: BiasModelKind = "overlap"
    positive_label: str | None = None  # for F1


def _sample(fmt: str, path: str, **kw) -> SourceSpec:
    return SourceSpec(format=fmt, path=f"sample:{path}", **kw)  # type: ignore[arg-type]


def _ood(fmt: str, path: str, metric: str) -> EvalSourceSpec:
    return EvalSourceSpec(format=fmt, path=f"sample:{path}", metric=metric)  # type: ignore[arg-type]


TASKS: dict[str, TaskInfo] = {
    # Label order matters for bias files: contradiction, entailment, neutral.
    "mnli": TaskInfo(
        name="mnli",
        labels=("contradiction", "entailment", "neutral"),
        train=_sample("pair_json", "mnli/train.json"),
        dev=_sample("mnli_dev_tsv", "mnli/dev_matched.tsv"),
        ood={"hans": _ood("hans_tsv", "hans/heuristics_evaluation_set.txt.gz", "hans")},
        selection_metric="accuracy",
        bias_model="overlap_2way",
    ),
    "qqp": TaskInfo(
        name="qqp",
        labels=("0", "1"),
        train=_sample("pair_json", "qqp/train.json"),
        dev=_sample("pair_json", "qqp/dev.json"),
        ood={"paws_qqp": _ood("paws_tsv", "paws_qqp/dev_and_test.tsv", "paws")},
        selection_metric="f1",
        bias_model="overlap",
        positive_label="1",
    ),
    # FEVER NLI-style train/dev are not bundled (not available offline): give paths.
    "fever": TaskInfo(
        name="fever",
        labels=("SUPPORTS", "REFUTES", "NOT ENOUGH INFO"),
        train=None,
        dev=None,
        ood={
            "fever_symmetric_v1": _ood(
                "fever_symmetric_v1",
                "fever_symmetric/v0.1/fever_symmetric_generated.jsonl",
                "fever_symmetric",
            ),
            "fever_symmetric_v2": _ood(
                "fever_symmetric_v2",
                "fever_symmetric/v0.2/fever_symmetric_test.jsonl",
                "fever_symmetric",
            ),
        },
        selection_metric="accuracy",
        bias_model="claim_only",
    ),
}


class TaskConfigError(ValueError):
    """The spec and the registry together do not name a usable data set."""


@dataclass(frozen=True)
class ResolvedTask:
    """A task with the job's overrides applied: what the pipeline actually loads."""

    name: str
    labels: tuple[str, ...]
    train: SourceSpec
    dev: SourceSpec
    ood: dict[str, EvalSourceSpec]
    selection_metric: Literal["accuracy", "f1"]
    bias_model: BiasModelKind
    positive_label: str | None


def resolve_task(spec: JobSpec) -> ResolvedTask:
    """Apply the spec's data overrides to the registry entry of its task."""
    if spec.task == "custom":
        assert spec.data.labels is not None and spec.data.train and spec.data.dev
        base = TaskInfo(
            name="custom",
            labels=tuple(spec.data.labels),
            train=spec.data.train,
            dev=spec.data.dev,
            selection_metric="accuracy",
            bias_model="overlap",
        )
    else:
        base = TASKS[spec.task]
    train = spec.data.train or base.train
    dev = spec.data.dev or base.dev
    if train is None:
        raise TaskConfigError(
            f"data.train: task '{spec.task}' has no bundled training set; give a path or hub id"
        )
    if dev is None:
        raise TaskConfigError(
            f"data.dev: task '{spec.task}' has no bundled dev set; give a path or hub id"
        )
    ood = dict(base.ood)
    if spec.data.ood:
        ood.update(spec.data.ood)
    if spec.evaluation.ood_sets is not None:
        unknown = [n for n in spec.evaluation.ood_sets if n not in ood]
        if unknown:
            raise TaskConfigError(
                f"evaluation.ood_sets: unknown OOD set(s) {unknown}; known: {sorted(ood)}"
            )
        ood = {n: ood[n] for n in spec.evaluation.ood_sets}
    return ResolvedTask(
        name=base.name,
        labels=base.labels,
        train=train,
        dev=dev,
        ood=ood,
        selection_metric=base.selection_metric,
        bias_model=base.bias_model,
        positive_label=base.positive_label,
    )
