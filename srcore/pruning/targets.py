"""Which weight matrices are pruned, found from the model's structure.

Masks are keyed by the model's own parameter names
(`bert.encoder.layer.3.attention.self.query.weight`), so they apply to an unmodified
`AutoModelForSequenceClassification`. The encoder layers, the pooler and the head are found
structurally, which covers BERT, RoBERTa, DistilBERT and kin.
"""

from __future__ import annotations

from torch import Tensor, nn


def _base_model(model: nn.Module) -> nn.Module:
    # transformers' PreTrainedModel.base_model is the encoder without the task head.
    base = getattr(model, "base_model", None)
    return base if isinstance(base, nn.Module) else model


def _encoder_layers(base: nn.Module) -> nn.ModuleList:
    for name, module in base.named_modules():
        last = name.rsplit(".", 1)[-1]
        if isinstance(module, nn.ModuleList) and last in ("layer", "layers") and len(module) > 0:
            return module
    raise ValueError("no encoder layer list (`encoder.layer`) found in the model")


def _linear_weight_names(model: nn.Module, roots: list[nn.Module]) -> set[str]:
    wanted = {id(m) for root in roots for m in root.modules() if isinstance(m, nn.Linear)}
    return {f"{name}.weight" for name, m in model.named_modules() if id(m) in wanted}


def head_modules(model: nn.Module) -> list[nn.Module]:
    """Top-level children outside the base model: the task head (classifier)."""
    base = _base_model(model)
    if base is model:
        return []
    return [child for child in model.children() if child is not base]


def prunable_weights(model: nn.Module, include_classifier: bool) -> list[str]:
    """Names of the pruned matrices, in the model's parameter order.

    Every nn.Linear inside the encoder layers (query, key, value, attention output, intermediate,
    output), the pooler's, and with `include_classifier` the head's. Never embeddings, biases or
    LayerNorm.
    """
    base = _base_model(model)
    roots: list[nn.Module] = list(_encoder_layers(base))
    pooler = getattr(base, "pooler", None)
    if isinstance(pooler, nn.Module):
        roots.append(pooler)
    if include_classifier:
        roots.extend(head_modules(model))
    wanted = _linear_weight_names(model, roots)
    order = [f"{name}.weight" for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return [name for name in order if name in wanted]


def head_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The head's parameters by their model names (CPU copies): what scenario 3 stores beside
    the mask, since its random classifier is never trained and cannot be re-drawn."""
    head = {id(p) for module in head_modules(model) for p in module.parameters()}
    return {name: p.detach().cpu().clone() for name, p in model.named_parameters() if id(p) in head}


def base_parameter_names(model: nn.Module) -> list[str]:
    """Parameters of the base model (everything but the head): what IMP rewinding resets."""
    head = {id(p) for module in head_modules(model) for p in module.parameters()}
    return [name for name, p in model.named_parameters() if id(p) not in head]


def get_weight(model: nn.Module, name: str) -> Tensor:
    """The tensor `name` names; for a parametrized module, the effective (masked) weight."""
    module_path, _, attr = name.rpartition(".")
    return getattr(model.get_submodule(module_path), attr)
