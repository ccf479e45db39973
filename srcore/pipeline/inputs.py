"""What a job reads: its data (train, ID dev, OOD sets), tokenizer and models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from srcore.data.examples import Example, Split
from srcore.data.loaders import eval_label_names, load_split
from srcore.evaluation import EvalSet
from srcore.jobspec.spec import JobSpec
from srcore.jobspec.task_registry import ResolvedTask, resolve_task
from srcore.models import ModelNotFoundError, check_max_length, resolve_model_path
from srcore.training import EncodedSplit, encode_split

# The dtype of every loaded model's weights (and so of the optimizer state and the export).
MASTER_DTYPE = torch.float32

DEV_SET = "dev"  # the name of the ID dev set in metrics


@dataclass
class JobData:
    task: ResolvedTask
    train: Split
    dev: Split
    ood: dict[str, Split]
    tokenizer: object
    model_path: str
    encoded_train: EncodedSplit
    eval_sets: list[EvalSet] = field(default_factory=list)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.task.labels

    @property
    def selection_key(self) -> str:
        return self.task.selection_metric


def load_tokenizer(model_path: str, revision: str | None = None):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model_path, revision=revision, use_fast=True)
    except OSError as exc:
        raise ModelNotFoundError(
            f"model.name_or_path: cannot load a tokenizer from '{model_path}' "
            f"(offline, or not a model directory / hub id): {exc}"
        ) from exc


def load_model(
    model_path: str,
    labels: tuple[str, ...],
    seed: int,
    revision: str | None = None,
    state_dir: Path | None = None,
) -> nn.Module:
    """A sequence-classification model with a classifier seeded by `seed`.

    `state_dir`: a save_pretrained directory to load instead (a cached dense fine-tune).
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    torch.manual_seed(seed)  # the fresh classifier's init is part of the result
    source = str(state_dir) if state_dir is not None else model_path
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            revision=None if state_dir is not None else revision,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
            # Master weights are fp32 whatever the checkpoint stores: transformers keeps a
            # bf16/fp16 file's dtype, which would train (and keep AdamW state) in half
            # precision. Mixed precision is autocast's job (training.precision).
            dtype=MASTER_DTYPE,
        )
    except OSError as exc:
        raise ModelNotFoundError(
            f"model.name_or_path: cannot load '{source}' (offline, or not a model): {exc}"
        ) from exc
    except RuntimeError as exc:  # a classifier of another size: the same on every attempt
        if "mismatch" not in str(exc):
            raise
        raise ModelNotFoundError(
            f"model.name_or_path: '{source}' has a classifier for "
            f"{_checkpoint_label_count(source, None if state_dir else revision)} labels, but "
            f"the task has "
            f"{len(labels)} labels ({', '.join(labels)}); use a checkpoint without a "
            "classification head or one trained on this task's labels"
        ) from exc


def _checkpoint_label_count(source: str, revision: str | None) -> int | str:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision).num_labels
    except Exception:  # the count is for the message only
        return "another number of"


def _ood_training_examples(spec: JobSpec, labels: tuple[str, ...]) -> list[Example]:
    """The OOD upper bound's extra training rows, labels mapped into the task's labels."""
    cfg = spec.data.ood_training
    if cfg is None:
        return []
    extra: list[Example] = []
    for i, source in enumerate(cfg.sources):
        if cfg.label_map and source.label_map is None:
            source = source.model_copy(update={"label_map": cfg.label_map})
        split = load_split(
            source, labels, name=f"ood_train_{i}", max_examples=cfg.max_examples, seed=0
        )
        for copy in range(cfg.duplication):
            extra.extend(
                Example(f"ood{i}:{copy}:{e.uid}", e.text_a, e.text_b, e.label, e.meta)
                for e in split.examples
            )
    return extra


def load_job_data(spec: JobSpec) -> JobData:
    task = resolve_task(spec)
    labels = task.labels
    # The model first: a wrong name fails in a second, not after the data has loaded.
    model_path = resolve_model_path(spec.model.name_or_path)
    tokenizer = load_tokenizer(model_path, spec.model.revision)
    check_max_length(model_path, spec.model.revision, spec.training.max_length)
    train = load_split(
        task.train, labels, name="train", max_examples=spec.data.max_train_examples, seed=0
    )
    extra = _ood_training_examples(spec, labels)
    if extra:
        train = Split("train", train.examples + extra, train.label_names, train.origin + " + ood")
    dev = load_split(task.dev, labels, DEV_SET, max_examples=spec.data.max_eval_examples, seed=0)
    ood = {
        name: load_split(
            source,
            eval_label_names(source.metric, labels),
            name,
            max_examples=spec.data.max_eval_examples,
            seed=0,
        )
        for name, source in task.ood.items()
    }
    max_len = spec.training.max_length
    data = JobData(
        task=task,
        train=train,
        dev=dev,
        ood=ood,
        tokenizer=tokenizer,
        model_path=model_path,
        encoded_train=encode_split(train, tokenizer, max_len),
    )
    dev_metric = "f1" if task.selection_metric == "f1" else "accuracy"
    data.eval_sets.append(
        EvalSet(DEV_SET, encode_split(dev, tokenizer, max_len), dev_metric, task.positive_label)
    )
    for name, split in ood.items():
        metric = task.ood[name].metric
        positive = "1" if metric == "paws" else task.positive_label
        data.eval_sets.append(
            EvalSet(name, encode_split(split, tokenizer, max_len), metric, positive)
        )
    return data
