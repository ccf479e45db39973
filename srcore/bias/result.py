"""`BiasResult`, the one thing every bias source returns, and label bookkeeping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from srcore.data.examples import Split

ROW_SUM_ATOL = 1e-4
ENTAILMENT = "entailment"


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


def _mean(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 6) if values.size else None


def entailment_column(labels: Sequence[str]) -> int | None:
    """Index of the label named entailment (any case), or None."""
    lowered = [name.lower() for name in labels]
    return lowered.index(ENTAILMENT) if ENTAILMENT in lowered else None


def summary(probs: np.ndarray, gold: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Report fields every bias source shares: how peaked the bias is on the gold label,
    overall and per gold class, and (for NLI labels) mean p(entailment) per gold class: a
    bias that separates entailment from the rest shows a large gap there."""
    counts = np.bincount(gold, minlength=len(labels)) if gold.size else np.zeros(len(labels))
    gold_probs = probs[np.arange(len(gold)), gold] if gold.size else np.zeros(0)
    out: dict[str, Any] = {
        "n": len(gold),
        "labels": list(labels),
        "mean_gold_prob": _mean(gold_probs),
        "mean_gold_prob_by_class": {
            name: _mean(gold_probs[gold == i]) for i, name in enumerate(labels)
        },
        "class_distribution": {name: int(c) for name, c in zip(labels, counts, strict=True)},
        "mean_probs": {
            name: round(float(v), 6)
            for name, v in zip(labels, probs.mean(axis=0) if gold.size else counts, strict=True)
        },
    }
    entail = entailment_column(labels)
    if entail is not None:
        out["mean_p_entailment_by_gold"] = {
            name: _mean(probs[gold == i, entail]) for i, name in enumerate(labels)
        }
    return out


def hans_summary(
    probs: np.ndarray, split: Split, labels: Sequence[str], *, two_way: bool
) -> dict[str, Any]:
    """The bias model's own predictions on a HANS-style set (gold entailment /
    non-entailment): an overlap bias model should call nearly every pair entailment, since
    every HANS hypothesis is built from the premise's words.

    `probs` (N, C) in the task's `labels`; the model calls a pair entailment when
    p(entailment) >= 0.5 if `two_way` (the 2-way overlap model's own decision), else when
    entailment is its argmax (neutral and contradiction count as non-entailment).
    """
    entail = entailment_column(labels)
    if entail is None:
        raise ValueError(f"a HANS report needs an '{ENTAILMENT}' task label, not {list(labels)}")
    split_entail = entailment_column(split.label_names)
    if split_entail is None:
        raise ValueError(
            f"{split.origin}: a HANS set's labels must include '{ENTAILMENT}', "
            f"not {list(split.label_names)}"
        )
    p_ent = np.asarray(probs, dtype=np.float64)[:, entail]
    calls = p_ent >= 0.5 if two_way else probs.argmax(axis=1) == entail
    raw = np.fromiter((ex.label for ex in split.examples), dtype=np.int64, count=len(split))
    gold_ent = raw == split_entail
    groups = {"entailment": gold_ent, "non-entailment": ~gold_ent}
    out: dict[str, Any] = {
        "n": len(split),
        "decision": "p(entailment) >= 0.5" if two_way else "argmax is entailment",
        "accuracy": _mean(calls == gold_ent),
        "entailment_share": _mean(calls),
        "entailment_share_by_gold": {k: _mean(calls[m]) for k, m in groups.items()},
        "mean_p_entailment_by_gold": {k: _mean(p_ent[m]) for k, m in groups.items()},
    }
    heuristics = [ex.meta.get("heuristic") for ex in split.examples]
    if split.examples and all(heuristics):
        names = np.asarray(heuristics, dtype=object)
        out["entailment_share_by_heuristic"] = {
            h: {k: _mean(calls[(names == h) & m]) for k, m in groups.items()}
            for h in sorted(set(heuristics))
        }
    return out
