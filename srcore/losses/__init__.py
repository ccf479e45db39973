"""Debiasing losses (science.md): z main logits, y gold, b bias probabilities, t teacher.

One file per loss, each registering under its name (`registry.register_loss`); all return the
mean loss over the batch as a scalar tensor. Every module of this package is imported here, so
a new loss file registers without an edit elsewhere.
"""

import importlib
import pkgutil

from srcore.losses.conf_reg import confidence_regularization
from srcore.losses.cross_entropy import cross_entropy
from srcore.losses.product_of_experts import product_of_experts
from srcore.losses.registry import LOSSES, Loss, debias_loss, register_loss
from srcore.losses.reweight import reweighted_cross_entropy

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "LOSSES",
    "Loss",
    "confidence_regularization",
    "cross_entropy",
    "debias_loss",
    "product_of_experts",
    "register_loss",
    "reweighted_cross_entropy",
]
