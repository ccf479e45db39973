"""`BiasFit`: how a bias model is fitted, one object every bias model reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

FitMode = Literal["out_of_fold", "in_sample"]
FIT_MODES: tuple[str, ...] = get_args(FitMode)
ClassWeight = Literal["none", "balanced"]
CLASS_WEIGHTS: tuple[str, ...] = get_args(ClassWeight)
DEFAULT_FOLDS = 5


@dataclass(frozen=True)
class BiasFit:
    """The fit settings shared by the overlap and claim-only models.

    fit: `out_of_fold` (k-fold cross-fitting: each row predicted by a model that never saw
    it) or `in_sample` (one model on all rows predicts them). class_weight: `none` or
    `balanced` (scikit-learn's, over the classes the model is fitted on: entailment vs not
    for `overlap_2way`). `negation` adds the hypothesis-negation feature to the overlap models.
    `full_model`: also fit one model on all training rows, to score other splits with.
    """

    seed: int = 0
    folds: int = DEFAULT_FOLDS
    fit: str = "out_of_fold"
    class_weight: str = "none"
    negation: bool = False
    full_model: bool = False

    def __post_init__(self) -> None:
        if self.fit not in FIT_MODES:
            raise ValueError(f"unknown bias fit '{self.fit}'; known: {', '.join(FIT_MODES)}")
        if self.class_weight not in CLASS_WEIGHTS:
            known = ", ".join(CLASS_WEIGHTS)
            raise ValueError(f"unknown bias class_weight '{self.class_weight}'; known: {known}")

    @property
    def accuracy_key(self) -> str:
        """The report's name for the training-set accuracy of this fit."""
        return "oof_accuracy" if self.fit == "out_of_fold" else "in_sample_accuracy"
