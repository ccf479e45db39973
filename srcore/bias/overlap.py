"""The lexical-overlap bias model of MNLI (2-way) and QQP / custom tasks (over the task labels).

A logistic regression on `features.overlap_features`: it can only learn "how much does the
hypothesis copy the premise", which is exactly the shortcut PoE and reweighting should
discount (Clark et al. 2019; Utama et al. 2020).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from srcore.bias.crossfit import sklearn_class_weight, training_probabilities
from srcore.bias.features import feature_names, overlap_features
from srcore.bias.result import ENTAILMENT
from srcore.bias.settings import BiasFit
from srcore.data.examples import Split

# Scores another split (e.g. an OOD set) with the model fitted on all training rows:
# (N, C) probabilities in the task's label order.
SplitPredictor = Callable[[Split], np.ndarray]


def overlap_classifier(class_weight: str = "none") -> Pipeline:
    # Scaling keeps lbfgs well conditioned (log length difference and 0/1 flags differ in
    # range); the model stays a plain linear model of the features.
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(max_iter=1000, class_weight=sklearn_class_weight(class_weight)),
    )


def entailment_index(labels: Sequence[str]) -> int:
    """Column of the entailment label, found by name: label orders differ between sources."""
    lowered = [name.lower() for name in labels]
    if ENTAILMENT not in lowered:
        raise ValueError(
            f"bias model 'overlap_2way' needs an '{ENTAILMENT}' label; task labels are "
            f"{list(labels)} (use 'overlap' for other label sets)"
        )
    return lowered.index(ENTAILMENT)


def spread_two_way(p_entailment: np.ndarray, n_classes: int, entail: int) -> np.ndarray:
    """[p_non/(C-1), …, p_ent at `entail`, …]: for MNLI `[p_non/2, p_ent, p_non/2]`.

    The 2-way model says nothing about which non-entailment class, so the mass is split
    evenly; the columns follow the task label order.
    """
    p_ent = np.asarray(p_entailment, dtype=np.float64)
    out = np.repeat(((1.0 - p_ent) / (n_classes - 1))[:, None], n_classes, axis=1)
    out[:, entail] = p_ent
    return out


def _features(split: Split, negation: bool) -> np.ndarray:
    return overlap_features(((ex.text_a, ex.text_b) for ex in split.examples), negation)


def overlap_2way_probabilities(
    train: Split, labels: Sequence[str], gold: np.ndarray, settings: BiasFit
) -> tuple[np.ndarray, dict[str, Any], SplitPredictor | None]:
    """Entailment vs not (fitted out-of-fold or in-sample), spread to the task's classes.

    The third value scores other splits with the model fitted on all training rows (when
    `full_model`, or with `in_sample`), in the same spread task-label columns.
    """
    negation = settings.negation
    entail = entailment_index(labels)
    is_entailment = (gold == entail).astype(np.int64)
    x = _features(train, negation)
    p2, full = training_probabilities(
        partial(overlap_classifier, settings.class_weight), x, is_entailment, 2, settings
    )
    probs = spread_two_way(p2[:, 1], len(labels), entail)
    share = float(is_entailment.mean())
    report = {
        "features": list(feature_names(negation)),
        "accuracy_space": "entailment vs not-entailment",
        settings.accuracy_key: round(float(((p2[:, 1] >= 0.5) == is_entailment).mean()), 6),
        "majority_rate": round(max(share, 1.0 - share), 6),
        "mean_p_entailment": {
            "gold_entailment": round(float(p2[is_entailment == 1, 1].mean()), 6),
            "gold_not_entailment": round(float(p2[is_entailment == 0, 1].mean()), 6),
        },
    }
    predict = None
    if full is not None:
        n_classes, model = len(labels), full

        def predict(split: Split) -> np.ndarray:
            return spread_two_way(model(_features(split, negation))[:, 1], n_classes, entail)

    return probs, report, predict


def overlap_multiclass_probabilities(
    train: Split, labels: Sequence[str], gold: np.ndarray, settings: BiasFit
) -> tuple[np.ndarray, dict[str, Any], SplitPredictor | None]:
    """Multinomial LR of the task labels on the overlap features (out-of-fold or in-sample)."""
    negation = settings.negation
    x = _features(train, negation)
    probs, full = training_probabilities(
        partial(overlap_classifier, settings.class_weight), x, gold, len(labels), settings
    )
    counts = np.bincount(gold, minlength=len(labels))
    report = {
        "features": list(feature_names(negation)),
        "accuracy_space": "task labels",
        settings.accuracy_key: round(float((probs.argmax(axis=1) == gold).mean()), 6),
        "majority_rate": round(float(counts.max() / counts.sum()), 6),
    }
    predict = None
    if full is not None:
        model = full

        def predict(split: Split) -> np.ndarray:
            return model(_features(split, negation))

    return probs, report, predict
