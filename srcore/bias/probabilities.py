"""`bias_probabilities`: fit the task's bias model and give each training example its class
probabilities (out-of-fold by default, or in-sample), and score HANS-style sets with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import get_args

from srcore.bias.claim_only import claim_only_probabilities
from srcore.bias.crossfit import effective_folds
from srcore.bias.overlap import overlap_2way_probabilities, overlap_multiclass_probabilities
from srcore.bias.result import (
    BiasResult,
    entailment_column,
    gold_indices,
    hans_summary,
    normalised_rows,
    summary,
)
from srcore.bias.settings import BiasFit
from srcore.data.examples import Split
from srcore.jobspec.task_registry import BiasModelKind

BIAS_MODEL_KINDS: tuple[str, ...] = get_args(BiasModelKind)
BIAS_MODELS = {
    "overlap_2way": overlap_2way_probabilities,
    "overlap": overlap_multiclass_probabilities,
    "claim_only": claim_only_probabilities,
}


def bias_probabilities(
    kind: str,
    train: Split,
    labels: Sequence[str],
    settings: BiasFit | None = None,
    *,
    hans: Mapping[str, Split] | None = None,
) -> BiasResult:
    """Bias probabilities (N, C) for `train.examples`, columns in `labels` order.

    kind: `overlap_2way` (MNLI: entailment vs not, spread to the other labels evenly),
    `overlap` (QQP, custom: LR over the task labels) or `claim_only` (FEVER); `settings`
    how it is fitted (`BiasFit`: seed, folds, out-of-fold or in-sample, class weights, the
    negation feature). hans: HANS-style sets (labels entailment / non-entailment) to score
    with the model fitted on all training rows, whatever the fit is; their summaries go to
    `report["ood"][name]`.
    """
    if kind not in BIAS_MODEL_KINDS:
        raise ValueError(f"unknown bias model '{kind}'; known: {', '.join(BIAS_MODEL_KINDS)}")
    settings = settings or BiasFit()
    seed, fit, class_weight = settings.seed, settings.fit, settings.class_weight
    labels = tuple(labels)
    gold = gold_indices(train, labels)
    hans = dict(hans or {})
    scored = bool(hans) and entailment_column(labels) is not None
    model = BIAS_MODELS[kind]
    fitted = dataclasses.replace(settings, full_model=scored)
    probs, specific, predict = model(train, labels, gold, fitted)
    probs32 = normalised_rows(probs)
    report = {
        "kind": kind,
        "source": "model",
        "seed": seed,
        "fit": fit,
        "class_weight": class_weight,
        "folds": effective_folds(settings.folds, len(gold)) if fit == "out_of_fold" else None,
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
