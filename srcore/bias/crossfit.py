"""Out-of-fold (cross-fitted) probabilities for the training set.

Why: the bias probabilities are read on the very examples the bias model was fitted on. An
expressive model (the claim-only TF-IDF classifier has far more features than FEVER has
claims per n-gram) memorises its training set, gives the gold label p ≈ 1 everywhere, and
PoE / reweighting then see every example as "explained by the bias": the signal says nothing
about which examples a shortcut really predicts. Each example's probabilities therefore
come from a model that never saw it (k-fold, seeded, stratified when every class has k
members), as the bias would look on new data. `BiasFit(fit="in_sample")` is the
alternative (one model on all rows, read on those rows), for the cheap overlap models whose
few features cannot memorise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from srcore.bias.settings import CLASS_WEIGHTS, FIT_MODES, BiasFit

__all__ = ["CLASS_WEIGHTS", "FIT_MODES", "training_probabilities"]


def sklearn_class_weight(class_weight: str) -> str | None:
    """scikit-learn's `class_weight` for ours: `balanced` weighs each class by n / (k · n_c)."""
    if class_weight not in CLASS_WEIGHTS:
        raise ValueError(
            f"unknown bias class_weight '{class_weight}'; known: {', '.join(CLASS_WEIGHTS)}"
        )
    return None if class_weight == "none" else "balanced"


class Classifier(Protocol):
    classes_: np.ndarray

    def fit(self, x: Any, y: np.ndarray) -> Any: ...

    def predict_proba(self, x: Any) -> np.ndarray: ...


Predictor = Callable[[Any], np.ndarray]


def fit_full(
    make_model: Callable[[], Classifier], x: Any, y: np.ndarray, n_classes: int
) -> Predictor:
    """A model fitted on all of (`x`, `y`), as a function of new rows → (M, n_classes)
    probabilities over all `n_classes`, even for classes absent from `y`."""
    present = np.unique(y)
    if len(present) == 0:
        raise ValueError("a bias model needs at least 1 training example, got 0")
    if len(present) == 1:
        # A one-class fit (tiny or degenerate data): the only honest prediction.
        only = int(present[0])

        def constant(x_eval: Any) -> np.ndarray:
            out = np.zeros((len(x_eval), n_classes), dtype=np.float64)
            out[:, only] = 1.0
            return out

        return constant
    model = make_model()
    model.fit(x, y)
    columns = np.asarray(model.classes_, dtype=np.int64)

    def predict(x_eval: Any) -> np.ndarray:
        out = np.zeros((len(x_eval), n_classes), dtype=np.float64)
        if len(x_eval):
            out[:, columns] = model.predict_proba(x_eval)
        return out

    return predict


def _fit_predict(
    make_model: Callable[[], Classifier],
    x_fit: Any,
    y_fit: np.ndarray,
    x_eval: Any,
    n_classes: int,
) -> np.ndarray:
    """Probabilities over all `n_classes`, even for classes absent from `y_fit`."""
    return fit_full(make_model, x_fit, y_fit, n_classes)(x_eval)


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


def training_probabilities(
    make_model: Callable[[], Classifier],
    x: Any,
    y: np.ndarray,
    n_classes: int,
    settings: BiasFit,
) -> tuple[np.ndarray, Predictor | None]:
    """(training probabilities, a model fitted on all rows or None).

    fit `out_of_fold`: each row from a model that never saw it (k-fold with `settings.folds`
    and `settings.seed`, see module doc); `in_sample`: one model fitted on all rows predicts
    those same rows. The all-rows model (for scoring other splits, e.g. OOD sets) comes back
    when `settings.full_model` asks for it, or for free with `in_sample`.
    """
    if settings.fit == "in_sample":
        predict = fit_full(make_model, x, y, n_classes)
        return predict(x), predict
    probs = out_of_fold_probabilities(make_model, x, y, n_classes, settings.folds, settings.seed)
    return probs, (fit_full(make_model, x, y, n_classes) if settings.full_model else None)
