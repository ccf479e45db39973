"""`BiasResult`, the one thing every bias source returns, and label bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srcore.data.examples import Split

ROW_SUM_ATOL = 1e-4


@dataclass(frozen=True)
class BiasResult:
    """Per-training-example class probabilities.

    `probs[i]` belongs to `train.examples[i]`; columns follow the task's label order.
    `report` is JSON-serialisable and goes into the job's metrics.
    """

    probs: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.probs
        if not isinstance(p, np.ndarray) or p.ndim != 2 or p.dtype != np.float32:
            raise ValueError("BiasResult.probs must be a 2-D float32 array")
        if p.size and not np.isfinite(p).all():
            raise ValueError("BiasResult.probs has non-finite values")
        if p.size and (np.abs(p.sum(axis=1) - 1.0) > ROW_SUM_ATOL).any():
            raise ValueError("BiasResult.probs rows must sum to 1")


def normalised_rows(probs: np.ndarray) -> np.ndarray:
    """float32 copy whose rows sum to 1 (to float32 rounding)."""
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum(axis=1, keepdims=True)
    return p.astype(np.float32)


def gold_indices(train: Split, labels: Sequence[str]) -> np.ndarray:
    """Gold labels as indices into the task's `labels`.

    `Example.label` indexes the split's own `label_names`; mapping by name keeps us right
    even if a loader ever orders them differently from the task.
    """
    position = {name: i for i, name in enumerate(labels)}
    missing = [name for name in train.label_names if name not in position]
    if missing:
        raise ValueError(
            f"{train.origin}: split labels {missing} are not task labels {list(labels)}"
        )
    remap = np.array([position[name] for name in train.label_names], dtype=np.int64)
    raw = np.fromiter((ex.label for ex in train.examples), dtype=np.int64, count=len(train))
    if raw.size and (raw.min() < 0 or raw.max() >= len(remap)):
        raise ValueError(f"{train.origin}: an example's label index is outside its label names")
    return remap[raw]


def summary(probs: np.ndarray, gold: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Report fields every bias source shares: how peaked the bias is on the gold label."""
    counts = np.bincount(gold, minlength=len(labels)) if gold.size else np.zeros(len(labels))
    mean_gold = float(probs[np.arange(len(gold)), gold].mean()) if gold.size else None
    return {
        "n": len(gold),
        "labels": list(labels),
        "mean_gold_prob": None if mean_gold is None else round(mean_gold, 6),
        "class_distribution": {name: int(c) for name, c in zip(labels, counts, strict=True)},
        "mean_probs": {
            name: round(float(v), 6)
            for name, v in zip(labels, probs.mean(axis=0) if gold.size else counts, strict=True)
        },
    }
