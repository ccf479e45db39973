"""Structured pruning: whole FFN neurons, and optionally whole attention heads, of every
encoder layer.

A unit is a group of rows of some matrices and the matching columns of the matrix that reads
them back into the hidden state:

- an FFN neuron j: row j of the up-projection (BERT's `intermediate.dense`, weight and bias)
  and column j of the down-projection (`output.dense`);
- an attention head h (head size d): rows h·d … h·d + d - 1 of query, key and value (weights
  and biases) and the same columns of the attention output (`attention.output.dense`).

Zeroing a unit's columns removes its whole contribution to the layer's output, so mask
training gates the columns only (one score per unit); the masks written to the artifact are
per weight, expanded to the rows and columns, so every per-weight reader (mask files,
`apply_masks`, restore) works as for unstructured masks. The same count of units is kept in
every layer, so an exported model is a plain model of the family with a smaller
`intermediate_size` (`shrink_ffn`). Heads are zeroed, not removed: transformers 5 has no
`prune_heads`, and a plain config cannot say which heads a layer lacks.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
_HEAD_COUNT_KEYS = ("num_attention_heads", "n_heads")

UnitKind = Literal["ffn", "heads"]


@dataclass(frozen=True)
class UnitGroup:
    """The units of one kind in one encoder layer, by parameter names."""

    kind: UnitKind
    rows: tuple[str, ...]  # matrices whose rows belong to the units (width rows per unit)
    row_biases: tuple[str, ...]
    column: str  # the matrix whose columns belong to the units (width columns per unit)
    n_units: int
    width: int = 1  # rows / columns per unit: 1 for a neuron, the head size for a head

    @property
    def names(self) -> tuple[str, ...]:
        """The matrices a mask of these units covers."""
        return (*self.rows, self.column)

    # FFN naming (one row matrix): the up- and down-projection
    @property
    def up_weight(self) -> str:
        return self.rows[0]

    @property
    def up_bias(self) -> str | None:
        return self.row_biases[0] if self.row_biases else None

    @property
    def down_weight(self) -> str:
        return self.column


def _layer_linears(model: nn.Module) -> tuple[dict[int, str], list[tuple[int, list[nn.Linear]]]]:
    names = {id(m): n for n, m in model.named_modules()}
    layers = _encoder_layers(_base_model(model))
    return names, [
        (i, [m for m in layer.modules() if isinstance(m, nn.Linear)])
        for i, layer in enumerate(layers)
    ]


def ffn_units(model: nn.Module) -> list[UnitGroup]:
    """Per encoder layer, its FFN found structurally: the Linear that widens the hidden size
    (up) and the Linear that reads that width back to the hidden size (down)."""
    names, layers = _layer_linears(model)
    found: list[UnitGroup] = []
    for index, linears in layers:
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
            UnitGroup(
                kind="ffn",
                rows=(f"{up_name}.weight",),
                row_biases=(f"{up_name}.bias",) if up.bias is not None else (),
                column=f"{down_name}.weight",
                n_units=up.out_features,
            )
        )
    return found


def head_units(model: nn.Module) -> list[UnitGroup]:
    """Per encoder layer, its attention heads: the layer's four hidden → hidden Linears in
    module order are query, key, value and the attention output (BERT, RoBERTa, DistilBERT)."""
    config = getattr(model, "config", None)
    heads = next((getattr(config, k) for k in _HEAD_COUNT_KEYS if hasattr(config, k)), None)
    if not isinstance(heads, int) or heads < 1:
        raise ValueError("the model's config names no head count (num_attention_heads)")
    names, layers = _layer_linears(model)
    found: list[UnitGroup] = []
    for index, linears in layers:
        # The config's width: in a shrunk checkpoint the FFN may be narrower than the hidden size.
        hidden = next((getattr(config, k) for k in ("hidden_size", "dim") if hasattr(config, k)),
                      min(m.in_features for m in linears))  # fmt: skip
        square = [m for m in linears if m.in_features == hidden and m.out_features == hidden]
        # A shrunk FFN as wide as the hidden size is square too; attention comes first.
        if len(square) == 6:
            square = square[:4]
        if len(square) != 4 or hidden % heads:
            raise ValueError(
                f"encoder layer {index}: expected query, key, value and attention output "
                f"({hidden} → {hidden}, {heads} heads), found {len(square)} such matrices"
            )
        q, k, v, out = square
        found.append(
            UnitGroup(
                kind="heads",
                rows=tuple(f"{names[id(m)]}.weight" for m in (q, k, v)),
                row_biases=tuple(f"{names[id(m)]}.bias" for m in (q, k, v) if m.bias is not None),
                column=f"{names[id(out)]}.weight",
                n_units=heads,
                width=hidden // heads,
            )
        )
    return found


def structure_units(model: nn.Module, structure: str) -> list[UnitGroup]:
    """The unit groups of `pruning.structure`: FFN neurons, then heads (ffn_neurons+heads)."""
    if structure == "ffn_neurons":
        return ffn_units(model)
    if structure == "ffn_neurons+heads":
        return [*ffn_units(model), *head_units(model)]
    raise ValueError(f"pruning.structure: {structure!r} is not a structured pruning")


def unit_weight_names(units: Sequence[UnitGroup]) -> list[str]:
    """The matrices a structured mask covers, in layer order (rows, then the column)."""
    return [name for u in units for name in u.names]


def _per_unit(values: Tensor, u: UnitGroup) -> Tensor:
    """Sum each unit's `width` consecutive entries."""
    return values.view(u.n_units, u.width).sum(1)


@torch.no_grad()
def unit_norms(model: nn.Module, units: Sequence[UnitGroup]) -> list[Tensor]:
    """Per group, the L2 norm of each unit's weights: its rows (and biases) and columns."""
    params = dict(model.named_parameters())
    norms = []
    for u in units:
        column = get_weight(model, u.column).detach().float()
        squared = _per_unit(column.pow(2).sum(0), u)
        for name in u.rows:
            squared += _per_unit(get_weight(model, name).detach().float().pow(2).sum(1), u)
        for name in u.row_biases:
            squared += _per_unit(params[name].detach().float().pow(2), u)
        norms.append(squared.sqrt())
    return norms


def mask_shapes(model: nn.Module, units: Sequence[UnitGroup]) -> dict[str, torch.Size]:
    """The shape of every matrix the units' masks cover."""
    return {name: get_weight(model, name).shape for u in units for name in u.names}


def expand_unit_masks(
    units: Sequence[UnitGroup], keeps: Sequence[Tensor], shapes: Mapping[str, Sequence[int]]
) -> dict[str, Tensor]:
    """Per-weight masks (True = kept) from per-unit ones: the rows and the columns."""
    masks: dict[str, Tensor] = {}
    for u, keep in zip(units, keeps, strict=True):
        flat = keep.to(torch.bool).repeat_interleave(u.width)
        for name in u.rows:
            masks[name] = flat[:, None].expand(*shapes[name]).clone()
        masks[u.column] = flat[None, :].expand(*shapes[u.column]).clone()
    return masks


def unit_keeps_from_masks(units: Sequence[UnitGroup], masks: Mapping[str, Tensor]) -> list[Tensor]:
    """The per-unit keep vectors of expanded masks; refuses masks that are not structured
    (a column partly kept, a unit partly kept, or rows that disagree with the columns)."""
    keeps = []
    for u in units:
        column = masks[u.column].to(torch.bool)
        flat = column.all(0)
        if not torch.equal(column, flat[None, :].expand_as(column)):
            raise ValueError(f"{u.column}: the mask is not whole columns (not structured)")
        keep = flat.view(u.n_units, u.width).all(1)
        if not torch.equal(flat, keep.repeat_interleave(u.width)):
            raise ValueError(f"{u.column}: the mask keeps part of a unit")
        for name in u.rows:
            rows = masks.get(name)
            if rows is not None and not torch.equal(
                rows.to(torch.bool), flat[:, None].expand_as(rows)
            ):
                raise ValueError(f"{name}: the mask's rows disagree with {u.column}")
        keeps.append(keep)
    return keeps


@torch.no_grad()
def unit_magnitude_masks(
    model: nn.Module,
    units: Sequence[UnitGroup],
    sparsity: float,
    previous: Mapping[str, Tensor] | None = None,
) -> dict[str, Tensor]:
    """Per group, exactly round(sparsity × n_units) units pruned at the smallest unit norm
    (ties by index), expanded to per-weight masks. With `previous` (IMP) the units it pruned
    stay pruned and the count is of the original units."""
    return masks_from_norms(
        units, unit_norms(model, units), mask_shapes(model, units), sparsity, previous
    )


def masks_from_norms(
    units: Sequence[UnitGroup],
    norms: Sequence[Tensor],
    shapes: Mapping[str, Sequence[int]],
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
                    f"{u.column}: {int(gone.sum())} units already pruned, more than "
                    f"the {k} that sparsity {sparsity} allows"
                )
            norm = norm.masked_fill(gone, -1.0)  # below every norm: pruned first
        keeps.append(keep_all_but_lowest(norm, k))
    return expand_unit_masks(units, keeps, shapes)


class _StraightThroughColumns(torch.autograd.Function):
    """forward: W ⊙ 1[keep(s)] per unit of `width` columns; backward: ∂L/∂s_u = Σ over the
    unit's weights of ∂L/∂W_eff · W (the per-weight straight-through gradient, summed)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        weight: Tensor,
        scores: Tensor,
        threshold: Tensor,
        tie_keep: Tensor | None,
        width: int,
    ) -> Tensor:
        keep = keep_from_split(scores, threshold, tie_keep).to(weight.dtype)
        keep = keep.repeat_interleave(width)
        ctx.save_for_backward(weight, keep)
        ctx.scores_dtype, ctx.width = scores.dtype, width
        return weight * keep[None, :]

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        weight, keep = ctx.saved_tensors
        grad_weight = grad_out * keep[None, :] if ctx.needs_input_grad[0] else None
        grad_scores = None
        if ctx.needs_input_grad[1]:
            per_column = (grad_out * weight).sum(0)
            grad_scores = per_column.view(-1, ctx.width).sum(1).to(ctx.scores_dtype)
        return grad_weight, grad_scores, None, None, None


class UnitScoreMask(nn.Module):
    """The parametrization of a units' column matrix: one score per unit, τ and the tie mask,
    the same attributes as `ScoreMask` so `ScoreMasker`'s threshold reset and state handling
    apply unchanged (exact k units per layer)."""

    def __init__(self, scores: Tensor, threshold: float, width: int = 1) -> None:
        super().__init__()
        self.width = width
        self.scores = nn.Parameter(scores)
        self.register_buffer(
            "threshold", torch.tensor(threshold, dtype=scores.dtype, device=scores.device)
        )
        self.register_buffer("tie_keep", None, persistent=False)

    def forward(self, weight: Tensor) -> Tensor:
        return _StraightThroughColumns.apply(
            weight, self.scores, self.threshold, self.tie_keep, self.width
        )

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
    """hard: 0 for the smallest s·n units by unit norm, 2τ for the rest; soft: the norm."""
    if init == "soft":
        return norm.clone()
    if init != "hard":
        raise ValueError(f"unknown score init {init!r}")
    return keep_all_but_lowest(norm, pruned_count(norm.numel(), sparsity)).float() * (2 * threshold)


class UnitScoreMasker(ScoreMasker):
    """`ScoreMasker` with one score per unit (FFN neuron, attention head): the scores gate
    the columns of each group's column matrix; `current_masks` and `remove` give per-weight
    masks of every matrix the units cover. Pooler and classifier are not masked; with
    `structure` ffn_neurons neither is attention.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        structure: str = "ffn_neurons",
        init: ScoreInit = "hard",
        threshold: float = 0.01,
    ) -> None:
        self.units = structure_units(model, structure)
        self._shapes = mask_shapes(model, self.units)
        norms = unit_norms(model, self.units)
        self._unit_scores = {
            u.column: (initial_unit_scores(norm, sparsity, init, threshold), u.width)
            for u, norm in zip(self.units, norms, strict=True)
        }
        super().__init__(
            model, [u.column for u in self.units], sparsity, init=init, threshold=threshold
        )

    def _make_mask(self, name: str, weight: Tensor, sparsity: float, init: ScoreInit,
                   threshold: float) -> nn.Module:  # fmt: skip
        scores, width = self._unit_scores.pop(name)
        return UnitScoreMask(scores.to(weight.device), threshold, width)

    def unit_masks(self) -> list[Tensor]:
        """Per group, the units kept (bool, on the scores' device)."""
        return [self._masks[u.column].keep_mask() for u in self.units]

    def current_masks(self) -> dict[str, Tensor]:
        return expand_unit_masks(self.units, self.unit_masks(), self._shapes)

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


def _unit_parameter_count(u: UnitGroup, masks: Mapping[str, Tensor], biases: set[str]) -> int:
    """Parameters one unit holds: its rows (and biases) and its columns."""
    per_row = sum(masks[name].shape[1] for name in u.rows)
    per_row += sum(1 for name in u.row_biases if name in biases)
    return u.width * (per_row + masks[u.column].shape[0])


def structured_report(
    units: Sequence[UnitGroup], masks: Mapping[str, Tensor], model: nn.Module
) -> dict[str, Any]:
    """Sparsity as units (kept / pruned per layer) and as the share of the encoder layers'
    parameters removed (a unit's rows, biases and columns). FFN neurons are sliced out of the
    export (`model_parameters_after_export`); heads are zeroed in it."""
    keeps = unit_keeps_from_masks(units, masks)
    layers = _encoder_layers(_base_model(model))
    encoder_params = sum(p.numel() for p in layers.parameters())
    params = dict(model.named_parameters())
    report: dict[str, Any] = {}
    removed: dict[str, int] = {"ffn": 0, "heads": 0}
    for kind, label in (("ffn", "ffn_neurons"), ("heads", "heads")):
        group = [(u, k) for u, k in zip(units, keeps, strict=True) if u.kind == kind]
        if not group:
            continue
        kept = [int(k.sum()) for _, k in group]
        total = sum(u.n_units for u, _ in group)
        for u, k in group:
            removed[kind] += (u.n_units - int(k.sum())) * _unit_parameter_count(
                u, masks, set(params)
            )
        report.update({
            f"{label}_per_layer": group[0][0].n_units,
            f"{label}_kept_per_layer": kept,
            f"{label}_pruned": total - sum(kept),
            label: total,
            f"{label}_sparsity": (total - sum(kept)) / total,
        })  # fmt: skip
    gone = removed["ffn"] + removed["heads"]
    report.update({
        "structure": "ffn_neurons+heads" if "heads" in report else "ffn_neurons",
        "unit_sparsity": report.get("ffn_neurons_sparsity", 0.0),
        "model_parameters_after_export": sum(p.numel() for p in params.values()) - removed["ffn"],
        "encoder_parameters": encoder_params,
        "encoder_parameters_removed": gone,
        "sparsity_over_encoder_parameters": gone / encoder_params if encoder_params else 0.0,
    })  # fmt: skip
    return report


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
    units = ffn_units(model)  # heads, if masked, are zeroed in `state` and stay
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


def check_structured_model(
    model_path: str, num_labels: int, structure: str, revision: str | None = None
) -> None:
    """Refuse, before any stage runs, a model whose layers lack the units `structure` prunes
    (a BERT-style FFN; query, key, value and output for heads). Built on the meta device from
    its config: no weights are read."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_path, revision=revision, num_labels=num_labels)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    try:
        units = structure_units(model, structure)
        _ffn_width_key(config, units[0].n_units)
    except ValueError as exc:
        raise ValueError(f"pruning.structure '{structure}': {model_path}: {exc}") from exc
