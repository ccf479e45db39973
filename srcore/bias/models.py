"""`bias_probabilities`: fit the task's bias model and give each training example its
out-of-fold class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from srcore.bias.claim_only import claim_only_probabilities
from srcore.bias.crossfit import effective_folds
from srcore.bias.overlap import overlap_2way_probabilities, overlap_multiclass_probabilities
from srcore.bias.result import BiasResult, gold_indices, normalised_rows, summary
from srcore.data.examples import Split
from srcore.jobspec.task_registry import BiasModelKind

BIAS_MODEL_KINDS: tuple[str, ...] = get_args(BiasModelKind)
DEFAULT_FOLDS = 5


def bias_probabilities(
    kind: str,
    train: Split,
    labels: Sequence[str],
    seed: int = 0,
    *,
    folds: int = DEFAULT_FOLDS,
    negation: bool = False,
) -> BiasResult:
    """Bias probabilities (N, C) for `train.examples`, columns in `labels` order.

    kind: `overlap_2way` (MNLI: entailment vs not, spread to the other labels evenly),
    `overlap` (QQP, custom: LR over the task labels) or `claim_only` (FEVER).
    `negation` adds the hypothesis-negation feature to the overlap models.
    """
    if kind not in BIAS_MODEL_KINDS:
        raise ValueError(f"unknown bias model '{kind}'; known: {', '.join(BIAS_MODEL_KINDS)}")
    labels = tuple(labels)
    gold = gold_indices(train, labels)
    if kind == "overlap_2way":
        probs, specific = overlap_2way_probabilities(train, labels, gold, seed, folds, negation)
    elif kind == "overlap":
        probs, specific = overlap_multiclass_probabilities(
            train, labels, gold, seed, folds, negation
        )
    else:
        probs, specific = claim_only_probabilities(train, labels, gold, seed, folds)
    probs32 = normalised_rows(probs)
    report = {
        "kind": kind,
        "source": "model",
        "seed": seed,
        "folds": effective_folds(folds, len(gold)),
        "out_of_fold": True,
        **summary(probs32, gold, labels),
        **specific,
    }
    return BiasResult(probs=probs32, report=report)
