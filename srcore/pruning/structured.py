"""Structured pruning of FFN neurons: one unit per intermediate neuron of every encoder layer.

A neuron j of a layer is row j of the up-projection (BERT's `intermediate.dense`: weight and
bias) and column j of the down-projection (`output.dense`). Zeroing the column removes the
neuron's whole contribution to the layer's output, so mask training gates the column only
(one score per neuron); the masks written to the artifact are per-weight, expanded to the row
and the column, so every per-weight reader (mask files, `apply_masks`, restore) works as for
unstructured masks. The same count of neurons is kept in every layer, so an exported model is
a plain model of the family with a smaller `intermediate_size` (`shrink_ffn`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from srcore.pruning.mask_training import ScoreInit, ScoreMasker, _split_name
from srcore.pruning.selection import (
    keep_all_but_lowest,
    keep_from_split,
    lowest_k_split,
    pruned_count,
)
from srcore.pruning.targets import _base_model, _encoder_layers, get_weight

# Config attributes that hold the FFN width, by family (BERT/RoBERTa/ELECTRA; DistilBERT).
_FFN_WIDTH_KEYS = ("intermediate_size", "hidden_dim")


@dataclass(frozen=True)
class FfnUnits:
    """The FFN of one encoder layer: parameter names of its up and down projections."""

    up_weight: str  # (n_units, hidden): row j is neuron j's input weights
    up_bias: str | None
    down_weight: str  # (hidden, n_units): column j is neuron j's output weights
    n_units: int


def ffn_units(model: nn.Module) -> list[FfnUnits]:
    """Per encoder layer, its FFN found structurally: the Linear that widens the hidden size
    (up) and the Linear that reads that width back to the hidden size (down)."""
    names = {id(m): n for n, m in model.named_modules()}
    layers = _encoder_layers(_base_model(model))
    found: list[FfnUnits] = []
    for index, layer in enumerate(layers):
        linears = [m for m in layer.modules() if isinstance(m, nn.Linear)]
        hidden = min(m.in_features for m in linears)
        ups = [m for m in linears if m.in_features == hidden and m.out_features != hidden]
        if len(ups) != 1:
            raise ValueError(
                f"encoder layer {index}: expected one FFN up-projection (hidden {hidden} → a "
                f"different width), found {len(ups)}; ffn_neurons needs a BERT-style FFN"
            )
        up = ups[0]
        downs = [
            m for m in linears if m.in_features == up.out_features and m.out_features == hidden
        ]
        if len(downs) != 1:
            raise ValueError(f"encoder layer {index}: no FFN down-projection found")
        up_name, down_name = names[id(up)], names[id(downs[0])]
        found.append(
            FfnUnits(
                up_weight=f"{up_name}.weight",
                up_bias=f"{up_name}.bias" if up.bias is not None else None,
                down_weight=f"{down_name}.weight",
                n_units=up.out_features,
            )
        )
    return found


def ffn_weight_names(units: Sequence[FfnUnits]) -> list[str]:
    """The matrices a structured mask covers, in layer order (up, down)."""
    return [name for u in units for name in (u.up_weight, u.down_weight)]


@torch.no_grad()
def unit_norms(model: nn.Module, units: Sequence[FfnUnits]) -> list[Tensor]:
    """Per layer, the L2 norm of each neuron's weights: its up row, up bias and down column."""
    params = dict(model.named_parameters())
    norms = []
    for u in units:
        up = get_weight(model, u.up_weight).detach().float()
        down = get_weight(model, u.down_weight).detach().float()
        squared = up.pow(2).sum(1) + down.pow(2).sum(0)
        if u.up_bias is not None:
            squared = squared + params[u.up_bias].detach().float().pow(2)
        norms.append(squared.sqrt())
    return norms


def expand_unit_masks(
    units: Sequence[FfnUnits], keeps: Sequence[Tensor], hidden: Mapping[str, int]
) -> dict[str, Tensor]:
    """Per-weight masks (True = kept) from per-neuron ones: rows of up, columns of down."""
    masks: dict[str, Tensor] = {}
    for u, keep in zip(units, keeps, strict=True):
        keep = keep.to(torch.bool)
        masks[u.up_weight] = keep[:, None].expand(u.n_units, hidden[u.up_weight]).clone()
        masks[u.down_weight] = keep[None, :].expand(hidden[u.down_weight], u.n_units).clone()
    return masks


def hidden_sizes(model: nn.Module, units: Sequence[FfnUnits]) -> dict[str, int]:
    """Per FFN matrix, the size of its hidden side (up: columns, down: rows)."""
    return {
        **{u.up_weight: get_weight(model, u.up_weight).shape[1] for u in units},
        **{u.down_weight: get_weight(model, u.down_weight).shape[0] for u in units},
    }


def unit_keeps_from_masks(units: Sequence[FfnUnits], masks: Mapping[str, Tensor]) -> list[Tensor]:
    """The per-neuron keep vectors of expanded masks; refuses masks that are not structured
    (a down column partly kept, or up rows that disagree with the columns)."""
    keeps = []
    for u in units:
        down = masks[u.down_weight].to(torch.bool)
        keep = down.all(0)
        if not torch.equal(down, keep[None, :].expand_as(down)):
            raise ValueError(f"{u.down_weight}: the mask is not whole columns (not ffn_neurons)")
        up = masks.get(u.up_weight)
        if up is not None and not torch.equal(up.to(torch.bool), keep[:, None].expand_as(up)):
            raise ValueError(f"{u.up_weight}: the mask's rows disagree with {u.down_weight}")
        keeps.append(keep)
    return keeps


@torch.no_grad()
def unit_magnitude_masks(
    model: nn.Module,
    units: Sequence[FfnUnits],
    sparsity: float,
    previous: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Per layer, exactly round(sparsity × n_units) neurons pruned at the smallest unit norm
    (ties by index), expanded to per-weight masks. With `previous` (IMP) the neurons it pruned
    stay pruned and the count is of the original neurons."""
    return masks_from_norms(
        units, unit_norms(model, units), hidden_sizes(model, units), sparsity, previous
    )


def masks_from_norms(
    units: Sequence[FfnUnits],
    norms: Sequence[Tensor],
    hidden: Mapping[str, int],
    sparsity: float,
    previous: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """`unit_magnitude_masks` from unit norms taken earlier (`unit_norms`)."""
    keeps = []
    old = unit_keeps_from_masks(units, previous) if previous is not None else None
    for i, (u, norm) in enumerate(zip(units, norms, strict=True)):
        k = pruned_count(u.n_units, sparsity)
        if old is not None:
            gone = ~old[i].to(norm.device)
            if int(gone.sum()) > k:
                raise ValueError(
                    f"{u.down_weight}: {int(gone.sum())} neurons already pruned, more than "
                    f"the {k} that sparsity {sparsity} allows"
                )
            norm = norm.masked_fill(gone, -1.0)  # below every norm: pruned first
        keeps.append(keep_all_but_lowest(norm, k))
    return expand_unit_masks(units, keeps, hidden)


class _StraightThroughColumns(torch.autograd.Function):
    """forward: W ⊙ 1[keep(s)] per column; backward: ∂L/∂s_j = Σ_i ∂L/∂W_eff[i, j] · W[i, j]
    (the per-weight straight-through gradient summed over the neuron's weights)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, weight: Tensor, scores: Tensor, threshold: Tensor, tie_keep: Tensor | None
    ) -> Tensor:
        keep = keep_from_split(scores, threshold, tie_keep).to(weight.dtype)
        ctx.save_for_backward(weight, keep)
        ctx.scores_dtype = scores.dtype
        return weight * keep[None, :]

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        weight, keep = ctx.saved_tensors
        grad_weight = grad_out * keep[None, :] if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            grad_scores = (grad_out * weight).sum(0).to(ctx.scores_dtype)
        return grad_weight, grad_scores, None, None


class UnitScoreMask(nn.Module):
    """The parametrization of a down-projection: one score per column (neuron), τ and the tie
    mask, the same attributes as `ScoreMask` so `ScoreMasker`'s threshold reset and state
    handling apply unchanged (exact k neurons per layer)."""

    def __init__(self, scores: Tensor, threshold: float) -> None:
        super().__init__()
        self.scores = nn.Parameter(scores)
        self.register_buffer(
            "threshold", torch.tensor(threshold, dtype=scores.dtype, device=scores.device)
        )
        self.register_buffer("tie_keep", None, persistent=False)

    def forward(self, weight: Tensor) -> Tensor:
        return _StraightThroughColumns.apply(weight, self.scores, self.threshold, self.tie_keep)

    @torch.no_grad()
    def keep_mask(self) -> Tensor:
        return keep_from_split(self.scores, self.threshold, self.tie_keep)

    @torch.no_grad()
    def reset(self, sparsity: float) -> None:
        self.set_split(*lowest_k_split(self.scores, pruned_count(self.scores.numel(), sparsity)))

    @torch.no_grad()
    def set_split(self, threshold: Tensor, tie_keep: Tensor | None) -> None:
        self.threshold.copy_(threshold)
        self.tie_keep = tie_keep


def initial_unit_scores(norm: Tensor, sparsity: float, init: ScoreInit, threshold: float) -> Tensor:
    """hard: 0 for the smallest s·n neurons by unit norm, 2τ for the rest; soft: the norm."""
    if init == "soft":
        return norm.clone()
    if init != "hard":
        raise ValueError(f"unknown score init {init!r}")
    return keep_all_but_lowest(norm, pruned_count(norm.numel(), sparsity)).float() * (2 * threshold)


class UnitScoreMasker(ScoreMasker):
    """`ScoreMasker` with one score per FFN neuron: the scores gate the down-projection's
    columns; `current_masks` and `remove` give per-weight masks of the up and down matrices.

    Attention, pooler and classifier are not masked. `names` (the masks' keys) are the FFN
    matrices (`ffn_weight_names`); the parametrized ones are the down-projections.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        init: ScoreInit = "hard",
        threshold: float = 0.01,
    ) -> None:
        self.units = ffn_units(model)
        self._hidden = hidden_sizes(model, self.units)
        norms = unit_norms(model, self.units)
        self._unit_scores = {
            u.down_weight: initial_unit_scores(norm, sparsity, init, threshold)
            for u, norm in zip(self.units, norms, strict=True)
        }
        super().__init__(
            model, [u.down_weight for u in self.units], sparsity, init=init, threshold=threshold
        )

    def _make_mask(self, name: str, weight: Tensor, sparsity: float, init: ScoreInit,
                   threshold: float) -> nn.Module:  # fmt: skip
        scores = self._unit_scores.pop(name).to(weight.device)
        return UnitScoreMask(scores, threshold)

    def unit_masks(self) -> list[Tensor]:
        """Per layer, the neurons kept (bool, on the scores' device)."""
        return [self._masks[u.down_weight].keep_mask() for u in self.units]

    def current_masks(self) -> dict[str, Tensor]:
        return expand_unit_masks(self.units, self.unit_masks(), self._hidden)

    @torch.no_grad()
    def remove(self, leave_pruned: bool = True) -> dict[str, Tensor]:
        masks = self.current_masks()
        for name in self.names:
            module_path, attr = _split_name(name)
            parametrize.remove_parametrizations(
                self.model.get_submodule(module_path), attr, leave_parametrized=False
            )
        if leave_pruned:
            for name, keep in masks.items():
                get_weight(self.model, name).masked_fill_(~keep, 0.0)
        for name, param in self.model.named_parameters():
            param.requires_grad_(self._requires_grad.get(name, param.requires_grad))
        self._masks = {}
        return masks


def structured_report(
    units: Sequence[FfnUnits], masks: Mapping[str, Tensor], model: nn.Module
) -> dict[str, Any]:
    """Sparsity as units (neurons kept / pruned per layer) and as the share of the encoder
    layers' weights removed (a neuron removes its up row and bias and its down column)."""
    keeps = unit_keeps_from_masks(units, masks)
    layers = _encoder_layers(_base_model(model))
    encoder_params = sum(p.numel() for p in layers.parameters())
    removed = 0
    params = dict(model.named_parameters())
    for u, keep in zip(units, keeps, strict=True):
        gone = u.n_units - int(keep.sum())
        per_unit = masks[u.up_weight].shape[1] + masks[u.down_weight].shape[0]
        per_unit += 1 if u.up_bias is not None and u.up_bias in params else 0
        removed += gone * per_unit
    kept = [int(k.sum()) for k in keeps]
    total = sum(u.n_units for u in units)
    return {
        "structure": "ffn_neurons",
        "ffn_neurons_per_layer": units[0].n_units if units else 0,
        "ffn_neurons_kept_per_layer": kept,
        "ffn_neurons_pruned": total - sum(kept),
        "ffn_neurons": total,
        "unit_sparsity": (total - sum(kept)) / total if total else 0.0,
        "model_parameters_after_export": sum(p.numel() for p in params.values()) - removed,
        "encoder_parameters": encoder_params,
        "encoder_parameters_removed": removed,
        "sparsity_over_encoder_parameters": removed / encoder_params if encoder_params else 0.0,
    }


def _ffn_width_key(config: Any, width: int) -> str:
    for key in _FFN_WIDTH_KEYS:
        if getattr(config, key, None) == width:
            return key
    raise ValueError(
        f"the model's config names no FFN width equal to {width} ({', '.join(_FFN_WIDTH_KEYS)})"
    )


@torch.no_grad()
def shrink_ffn(
    model: nn.Module, state: Mapping[str, Tensor], masks: Mapping[str, Tensor]
) -> nn.Module:
    """A new plain model of `model`'s class whose FFNs keep only the neurons `masks` keeps,
    with `state` (plain names) sliced into it. Every layer must keep the same count: one
    `intermediate_size` in the config. Its logits equal the masked model's."""
    units = ffn_units(model)
    keeps = unit_keeps_from_masks(units, masks)
    counts = {int(k.sum()) for k in keeps}
    if len(counts) != 1:
        raise ValueError(f"layers keep different numbers of FFN neurons {sorted(counts)}")
    (kept,) = counts
    if kept == 0:
        raise ValueError("every FFN neuron is pruned; nothing to export")
    config = copy.deepcopy(model.config)
    setattr(config, _ffn_width_key(config, units[0].n_units), kept)
    sliced = dict(state)
    for u, keep in zip(units, keeps, strict=True):
        index = keep.nonzero().squeeze(1).to(state[u.up_weight].device)
        sliced[u.up_weight] = state[u.up_weight].index_select(0, index)
        if u.up_bias is not None:
            sliced[u.up_bias] = state[u.up_bias].index_select(0, index)
        sliced[u.down_weight] = state[u.down_weight].index_select(1, index)
    small = type(model)(config)
    missing, unexpected = small.load_state_dict(sliced, strict=False)
    # Tied or non-persistent entries may be absent from `state`; real weights may not.
    if unexpected or any(not key.endswith("position_ids") for key in missing):
        raise ValueError(f"shrunk model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return small.eval()


def check_ffn_model(model_path: str, num_labels: int, revision: str | None = None) -> None:
    """Refuse, before any stage runs, a model whose layers have no BERT-style FFN to prune
    by neurons. Built on the meta device from its config: no weights are read."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_path, revision=revision, num_labels=num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    try:
        units = ffn_units(model)
        _ffn_width_key(config, units[0].n_units)
    except ValueError as exc:
        raise ValueError(f"pruning.structure 'ffn_neurons': {model_path}: {exc}") from exc
