"""A small study base spec (64 train rows, two sparsities, three seeds) for tests of study
expansion and study tables, and `small_study(**fields)` to build a StudySpec on it."""

from __future__ import annotations

from typing import Any

from srcore.jobspec.study import StudySpec

BASE: dict[str, Any] = {
    "task": "mnli",
    "data": {"max_train_examples": 64, "max_eval_examples": 32},
    "pruning": {"method": "mask_training", "sparsities": [0.5, 0.7]},
    "training": {"seeds": [1, 2, 3]},
}


def small_study(**fields: Any) -> StudySpec:
    return StudySpec.model_validate({"base": BASE, **fields})
