"""How far a searched mask moved: from one-shot magnitude pruning of its start model, and
from its own initial mask.

At small step budgets mask training can end where it started (magnitude pruning plus a few
flips); these numbers make that visible in every report (science.md, "Scale").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskMovement:
    """Entry counts over the masked matrices both masks share."""

    entries: int  # entries compared
    differ_from_magnitude: int  # kept/pruned state differs from one-shot magnitude pruning
    flipped_from_init: int | None  # differs from the search's initial mask (scores crossed τ)

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
            **asdict(self),
            "differ_fraction": self.differ_fraction,
            "flipped_fraction": self.flipped_fraction,
        }


def count_differences(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> tuple[int, int]:
    """(entries compared, entries whose kept state differs) over the names both hold."""
    entries = differ = 0
    for name in sorted(set(a) & set(b)):
        left = a[name].to(torch.bool).cpu()
        right = b[name].to(torch.bool).cpu()
        if left.shape != right.shape:
            raise ValueError(
                f"{name}: mask shapes differ ({tuple(left.shape)} vs {tuple(right.shape)})"
            )
        entries += left.numel()
        differ += int(torch.count_nonzero(left ^ right))
    return entries, differ


def mask_movement(
    found: Mapping[str, Tensor],
    magnitude: Mapping[str, Tensor],
    initial: Mapping[str, Tensor] | None = None,
) -> MaskMovement:
    """Compare `found` with the magnitude mask of its start model at the same sparsity, and
    (mask training) with the mask it started from."""
    entries, differ = count_differences(found, magnitude)
    flipped = None if initial is None else count_differences(found, initial)[1]
    return MaskMovement(entries, differ, flipped)
