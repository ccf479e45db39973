"""`bias_probabilities`: fit the task's bias model and give each training example its class
probabilities (out-of-fold by default, or in-sample), and score HANS-style sets with it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import get_args

from srcore.bias.claim_only import claim_only_probabilities
from srcore.bias.crossfit import CLASS_WEIGHTS, FIT_MODES, effective_folds
from srcore.bias.overlap import overlap_2way_probabilities, overlap_multiclass_probabilities
from srcore.bias.result import (
    BiasResult,
    entailment_column,
    gold_indices,
    hans_summary,
    normalised_rows,
    summary,
)
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
    fit: str = "out_of_fold",
    class_weight: str = "none",
    hans: Mapping[str, Split] | None = None,
) -> BiasResult:
    """Bias probabilities (N, C) for `train.examples`, columns in `labels` order.

    kind: `overlap_2way` (MNLI: entailment vs not, spread to the other labels evenly),
    `overlap` (QQP, custom: LR over the task labels) or `claim_only` (FEVER).
    `negation` adds the hypothesis-negation feature to the overlap models.
    fit: `out_of_fold` (k-fold cross-fitting: each row predicted by a model that never saw
    it) or `in_sample` (one model on all rows predicts them). class_weight: `none` or
    `balanced` (scikit-learn's, over the classes the model is fitted on: entailment vs not
    for `overlap_2way`).
    hans: HANS-style sets (labels entailment / non-entailment) to score with the model
    fitted on all training rows, whatever `fit` is; their summaries go to
    `report["ood"][name]`.
    """
    if kind not in BIAS_MODEL_KINDS:
        raise ValueError(f"unknown bias model '{kind}'; known: {', '.join(BIAS_MODEL_KINDS)}")
    if fit not in FIT_MODES:
        raise ValueError(f"unknown bias fit '{fit}'; known: {', '.join(FIT_MODES)}")
    if class_weight not in CLASS_WEIGHTS:
        raise ValueError(
            f"unknown bias class_weight '{class_weight}'; known: {', '.join(CLASS_WEIGHTS)}"
        )
    labels = tuple(labels)
    gold = gold_indices(train, labels)
    hans = dict(hans or {})
    scored = bool(hans) and entailment_column(labels) is not None
    options = {"fit": fit, "class_weight": class_weight, "full_model": scored}
    if kind == "overlap_2way":
        probs, specific, predict = overlap_2way_probabilities(
            train, labels, gold, seed, folds, negation, **options
        )
    elif kind == "overlap":
        probs, specific, predict = overlap_multiclass_probabilities(
            train, labels, gold, seed, folds, negation, **options
        )
    else:
        probs, specific, predict = claim_only_probabilities(
            train, labels, gold, seed, folds, **options
        )
    probs32 = normalised_rows(probs)
    report = {
        "kind": kind,
        "source": "model",
        "seed": seed,
        "fit": fit,
        "class_weight": class_weight,
        "folds": effective_folds(folds, len(gold)) if fit == "out_of_fold" else None,
        "out_of_fold": fit == "out_of_fold",
        **summary(probs32, gold, labels),
        **specific,
    }
    if hans and entailment_column(labels) is None:
        skipped = f"task labels {list(labels)} have no 'entailment' to compare with HANS"
        report["ood"] = {name: {"metric": "hans", "skipped": skipped} for name in hans}
    elif hans:
        assert predict is not None
        report["ood"] = {
            name: {
                "metric": "hans",
                "fitted_on": "all training rows",
                **hans_summary(predict(split), split, labels, two_way=kind == "overlap_2way"),
            }
            for name, split in hans.items()
        }
    return BiasResult(probs=probs32, report=report)
