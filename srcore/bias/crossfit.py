"""Out-of-fold (cross-fitted) probabilities for the training set.

Why: the bias probabilities are read on the very examples the bias model was fitted on. An
expressive model (the claim-only TF-IDF classifier has far more features than FEVER has
claims per n-gram) memorises its training set, gives the gold label p ≈ 1 everywhere, and
PoE / reweighting then see every example as "explained by the bias": the signal says nothing
about which examples a shortcut really predicts. Each example's probabilities therefore
come from a model that never saw it (k-fold, seeded, stratified when every class has k
members), as the bias would look on new data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold


class Classifier(Protocol):
    classes_: np.ndarray

    def fit(self, x: Any, y: np.ndarray) -> Any: ...

    def predict_proba(self, x: Any) -> np.ndarray: ...


def _fit_predict(
    make_model: Callable[[], Classifier],
    x_fit: Any,
    y_fit: np.ndarray,
    x_eval: Any,
    n_classes: int,
) -> np.ndarray:
    """Probabilities over all `n_classes`, even for classes absent from `y_fit`."""
    present = np.unique(y_fit)
    out = np.zeros((len(x_eval), n_classes), dtype=np.float64)
    if len(present) == 1:
        # A one-class fold (tiny or degenerate data): the only honest prediction.
        out[:, present[0]] = 1.0
        return out
    model = make_model()
    model.fit(x_fit, y_fit)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(x_eval)
    return out


def effective_folds(folds: int, n: int) -> int:
    """Folds actually used: at least 2, at most one example per fold."""
    return max(2, min(folds, n))


def out_of_fold_probabilities(
    make_model: Callable[[], Classifier],
    x: Any,
    y: np.ndarray,
    n_classes: int,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """(N, n_classes) float64: row i predicted by a model fitted without example i.

    `x` is anything indexable by an integer array (a feature matrix, an object array of
    strings). With fewer than 2 examples there is nothing to hold out: error.
    """
    n = len(y)
    if n < 2:
        raise ValueError(f"cross-fitting needs at least 2 training examples, got {n}")
    k = effective_folds(folds, n)
    counts = np.bincount(y, minlength=n_classes)
    if counts[counts > 0].min() >= k:
        splitter: StratifiedKFold | KFold = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed)
    probs = np.empty((n, n_classes), dtype=np.float64)
    for fit_idx, eval_idx in splitter.split(np.zeros(n), y):
        probs[eval_idx] = _fit_predict(make_model, x[fit_idx], y[fit_idx], x[eval_idx], n_classes)
    return probs
