"""Evaluation's inputs and weights, made once instead of for every batch.

`EvalBatches` cuts a split into the batches `srcore.evaluation.predict` runs (longest first,
each padded to its own longest pair) and keeps them collated, so a set evaluated many times
during training is sorted and padded once. `frozen_linears` computes the weight each
`nn.Linear` uses once per evaluation, in the dtype autocast would cast it to: a mask-training
model's parametrized `W ⊙ mask` and its bf16 copy are made once rather than on every batch.

Both change nothing in the numbers: the batches are the ones predict made before (same rows,
same padding), and a weight cast once is the weight autocast casts on each call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srcore.training.batching import collate
from srcore.training.encoding import EncodedSplit

Inputs = dict[str, torch.Tensor]


def longest_first(encoded: EncodedSplit) -> np.ndarray:
    """The rows of `encoded`, longest first (ties in split order)."""
    return np.argsort(-encoded.lengths, kind="stable")


def padded_inputs(encoded: EncodedSplit, rows: np.ndarray, pad_multiple: int | None) -> Inputs:
    """The model inputs of `rows`, padded to the longest of them."""
    return collate(encoded, rows, pad_multiple).inputs


@dataclass(frozen=True)
class EvalBatches:
    """The batches of one split at one batch size: row indices and collated CPU inputs."""

    name: str
    batch_size: int
    pad_multiple: int | None
    rows: list[np.ndarray]
    inputs: list[Inputs]
    # per batch, the flat positions of its real tokens where padding is worth skipping
    real: list[torch.Tensor | None]

    def __len__(self) -> int:
        return len(self.rows)

    def suits(self, encoded: EncodedSplit, batch_size: int, pad_multiple: int | None) -> bool:
        """Made for this split (same rows) at this batch size and padding."""
        return (
            self.batch_size == batch_size
            and self.pad_multiple == pad_multiple
            and sum(len(r) for r in self.rows) == len(encoded)
            and self.name == encoded.name
        )


def eval_batches(
    encoded: EncodedSplit, batch_size: int, pad_multiple: int | None = None
) -> EvalBatches:
    """`encoded` in longest-first batches of `batch_size`, each padded to its longest row."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    order = longest_first(encoded)
    rows = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    inputs = [padded_inputs(encoded, r, pad_multiple) for r in rows]
    real = [_worth_packing(i["attention_mask"]) for i in inputs]
    return EvalBatches(encoded.name, batch_size, pad_multiple, rows, inputs, real)


# A batch whose padding is at least this share of its positions multiplies only its real
# tokens. Gathering and scattering them costs about as much as the GEMMs save at 10% padding
# (bench/eval_speed.py, MNLI dev: 0.1 and never were within noise, 0.3 was 5-9% faster).
PACK_MIN_PADDING = 0.3


def _worth_packing(attention_mask: torch.Tensor) -> torch.Tensor | None:
    real = int(attention_mask.sum())
    if real == 0 or 1.0 - real / attention_mask.numel() < PACK_MIN_PADDING:
        return None
    return real_token_index(attention_mask)


class BatchCache:
    """`EvalBatches` per split, built on first use: an evaluate_fn sorts and pads its sets
    once for the whole run. Keyed by the split object (the sets of a job do not change)."""

    def __init__(self) -> None:
        self._made: dict[int, tuple[EncodedSplit, EvalBatches]] = {}

    def get(self, encoded: EncodedSplit, batch_size: int, pad_multiple: int | None) -> EvalBatches:
        found = self._made.get(id(encoded))
        if (
            found is not None
            and found[0] is encoded
            and found[1].suits(encoded, batch_size, pad_multiple)
        ):
            return found[1]
        batches = eval_batches(encoded, batch_size, pad_multiple)
        self._made[id(encoded)] = (encoded, batches)
        return batches


# --- weights ---------------------------------------------------------------------------------


class TokenRows:
    """The real (unpadded) tokens of the batch being predicted, for `frozen_linears` to
    multiply only those: a linear acts on each token alone, and a padded position's values
    reach no real token (attention masks it out: its weight is exactly 0), so the real
    tokens come out as in the padded product where a GEMM's rows do not depend on how many
    rows it has (oneDNN's bf16 GEMM on the CPU; `predict` packs only there)."""

    def __init__(self) -> None:
        self.shape: tuple[int, int] | None = None
        self.index: torch.Tensor | None = None

    def set(self, attention_mask: torch.Tensor | None, index: torch.Tensor | None) -> None:
        """Pack the next forward's (B, W) tokens to `index` (flat); None: multiply all."""
        if attention_mask is None or index is None:
            self.shape, self.index = None, None
        else:
            b, w = attention_mask.shape
            self.shape, self.index = (b, w), index

    def packs(self, x: torch.Tensor) -> bool:
        return self.index is not None and x.dim() == 3 and tuple(x.shape[:2]) == self.shape


def real_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Flat positions of the real tokens of a (B, W) attention mask."""
    return attention_mask.reshape(-1).nonzero().squeeze(1)


def _frozen_forward(weight: torch.Tensor, bias: torch.Tensor | None, rows: TokenRows | None):
    def forward(x: torch.Tensor) -> torch.Tensor:
        if rows is None or not rows.packs(x):
            return F.linear(x, weight, bias)
        assert rows.index is not None and rows.shape is not None
        flat = x.reshape(-1, x.shape[-1])
        y = F.linear(flat.index_select(0, rows.index), weight, bias)
        out = y.new_zeros((flat.shape[0], y.shape[-1]))
        out.index_copy_(0, rows.index, y)
        return out.view(*rows.shape, y.shape[-1])

    return forward


def _cast(t: torch.Tensor | None, dtype: torch.dtype | None) -> torch.Tensor | None:
    # autocast leaves float64 as it is and casts every other floating tensor
    if t is None or dtype is None or not t.is_floating_point() or t.dtype in (dtype, torch.float64):
        return t
    return t.to(dtype)


@contextlib.contextmanager
def frozen_linears(
    model: nn.Module, dtype: torch.dtype | None = None, rows: TokenRows | None = None
) -> Iterator[int]:
    """While inside: every `nn.Linear` of `model` multiplies by its weight and bias as they
    are now, computed once (a parametrization runs once, not per call) and cast to `dtype`
    (autocast's compute dtype; None: as they are), and, when `rows` says so, only the real
    tokens of a (B, W, H) input (padded positions come out 0). Yields the count of linears.

    Use under `torch.inference_mode()` with the weights not changing: the weights a call
    would read are read at entry.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    saved: list[tuple[nn.Module, object]] = []
    try:
        for module in linears:
            weight = _cast(module.weight, dtype)
            bias = _cast(module.bias, dtype)
            saved.append((module, module.__dict__.get("forward")))
            module.forward = _frozen_forward(weight, bias, rows)  # type: ignore[method-assign]
        yield len(linears)
    finally:
        for module, forward in saved:
            if forward is None:
                del module.forward
            else:
                module.forward = forward  # type: ignore[method-assign]
