"""How far a searched mask moved: from one-shot magnitude pruning of its start model, and
from its own initial mask; in total, per matrix type and per encoder layer.

At small step budgets mask training can end where it started (magnitude pruning plus a few
flips); these numbers make that visible in every report (science.md, "Scale"), and the
breakdown shows where the search moved the mask: which of the six matrices of a layer (query,
key, value, attention output, intermediate, output: Q, K, V, AO, I, O), and which layers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

# The last part of a masked weight's name inside its layer → its matrix type. BERT, RoBERTa,
# ELECTRA, … name them as BERT does; DistilBERT has its own names.
MATRIX_TYPES = {
    "attention.self.query": "Q",
    "attention.self.key": "K",
    "attention.self.value": "V",
    "attention.output.dense": "AO",
    "intermediate.dense": "I",
    "output.dense": "O",
    "attention.q_lin": "Q",
    "attention.k_lin": "K",
    "attention.v_lin": "V",
    "attention.out_lin": "AO",
    "ffn.lin1": "I",
    "ffn.lin2": "O",
}
TYPE_ORDER = ("Q", "K", "V", "AO", "I", "O", "pooler", "classifier", "other")
_IN_LAYER = re.compile(r"(?:^|\.)layer\.(\d+)\.(.+)\.weight$")


def matrix_place(name: str) -> tuple[str, int | None]:
    """(matrix type, encoder layer) of a masked weight's parameter name; outside the layers
    (pooler, classifier) the layer is None; a name we do not know is type "other"."""
    found = _IN_LAYER.search(name)
    if found:
        return MATRIX_TYPES.get(found.group(2), "other"), int(found.group(1))
    if ".pooler." in f".{name}" or name.startswith("pooler"):
        return "pooler", None
    if "classifier" in name:  # also DistilBERT's pre_classifier
        return "classifier", None
    return "other", None


@dataclass(frozen=True)
class GroupMovement:
    """Entry counts over one group of matrices (one type, or one layer)."""

    entries: int
    differ_from_magnitude: int
    flipped_from_init: int | None

    @property
    def differ_fraction(self) -> float:
        return self.differ_from_magnitude / self.entries if self.entries else 0.0

    @property
    def flipped_fraction(self) -> float | None:
        if self.flipped_from_init is None:
            return None
        return self.flipped_from_init / self.entries if self.entries else 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "entries": self.entries,
            "differ_from_magnitude": self.differ_from_magnitude,
            "flipped_from_init": self.flipped_from_init,
            "differ_fraction": self.differ_fraction,
            "flipped_fraction": self.flipped_fraction,
        }


@dataclass(frozen=True)
class MaskMovement(GroupMovement):
    """Entry counts over the masked matrices both masks share, and the same per matrix type
    (`by_type`, in TYPE_ORDER) and per encoder layer (`by_layer`, by index)."""

    by_type: dict[str, GroupMovement] = field(default_factory=dict)
    by_layer: dict[int, GroupMovement] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            **super().as_dict(),
            "by_type": {name: g.as_dict() for name, g in self.by_type.items()},
            # JSON object keys are text: layer "0", "1", …
            "by_layer": {str(layer): g.as_dict() for layer, g in self.by_layer.items()},
        }


def differences_by_name(
    a: Mapping[str, Tensor], b: Mapping[str, Tensor]
) -> dict[str, tuple[int, int]]:
    """name → (entries, entries whose kept state differs), over the names both hold."""
    found = {}
    for name in sorted(set(a) & set(b)):
        left = a[name].to(torch.bool).cpu()
        right = b[name].to(torch.bool).cpu()
        if left.shape != right.shape:
            raise ValueError(
                f"{name}: mask shapes differ ({tuple(left.shape)} vs {tuple(right.shape)})"
            )
        found[name] = (left.numel(), int(torch.count_nonzero(left ^ right)))
    return found


def count_differences(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> tuple[int, int]:
    """(entries compared, entries whose kept state differs) over the names both hold."""
    counts = differences_by_name(a, b).values()
    return sum(n for n, _ in counts), sum(d for _, d in counts)


def mask_movement(
    found: Mapping[str, Tensor],
    magnitude: Mapping[str, Tensor],
    initial: Mapping[str, Tensor] | None = None,
) -> MaskMovement:
    """Compare `found` with the magnitude mask of its start model at the same sparsity, and
    (mask training) with the mask it started from; in total and per matrix type and layer."""
    differ = differences_by_name(found, magnitude)
    flipped = None if initial is None else differences_by_name(found, initial)
    types: dict[str, list[str]] = {}
    layers: dict[int, list[str]] = {}
    for name in differ:
        kind, layer = matrix_place(name)
        types.setdefault(kind, []).append(name)
        if layer is not None:
            layers.setdefault(layer, []).append(name)

    def group(names: list[str]) -> GroupMovement:
        flips = None if flipped is None else sum(flipped.get(n, (0, 0))[1] for n in names)
        return GroupMovement(
            sum(differ[n][0] for n in names), sum(differ[n][1] for n in names), flips
        )

    return MaskMovement(
        sum(n for n, _ in differ.values()),
        sum(d for _, d in differ.values()),
        None if flipped is None else sum(d for _, d in flipped.values()),
        by_type={t: group(types[t]) for t in TYPE_ORDER if t in types},
        by_layer={layer: group(layers[layer]) for layer in sorted(layers)},
    )
