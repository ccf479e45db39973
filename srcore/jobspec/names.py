"""The names the spec accepts for what grows: debiasing losses, evaluation metrics, pruning
methods. Torch-free: the spec's literals derive from these tuples.

A loss or a pruning method is declared by its own file, nowhere else: a module of
`srcore/losses/` with a top-level function decorated `@register_loss("name", order=…, bias=…,
teacher=…, description=…)`, a module of `srcore/pipeline/methods/` with a top-level class
decorated `@register_method("name", order=…, retrain_mask_from=…, description=…)`. This module reads
those decorators' literal arguments from the source text, without importing the files (they
import torch, and the API must not); importing the files registers the implementations under
the same names, and the registries check that the two readings agree.

Adding a loss: one file in `srcore/losses/` plus its test. Adding a pruning method: one file in
`srcore/pipeline/methods/` plus its test.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

SRCORE = Path(__file__).resolve().parents[1]
LOSSES_DIR = SRCORE / "losses"
METHODS_DIR = SRCORE / "pipeline" / "methods"


@dataclass(frozen=True)
class LossNeeds:
    """What a debiasing loss reads besides logits and gold labels."""

    bias: bool = False  # the bias model's probabilities b
    teacher: bool = False  # a teacher's probabilities t (conf_reg: the dense CE model)


@dataclass(frozen=True)
class MethodFacts:
    """What the torch-free plan must know of a pruning method."""

    # Scenario 2 (`pretrained_retrain`): the mask is found on the dense fine-tuned model
    # ("dense", then applied to the pre-trained one) or on the pre-trained model itself.
    retrain_mask_from: Literal["dense", "pretrained"] = "pretrained"
    description: str = ""  # one line for the model card


def declared(folder: Path, decorator: str) -> dict[str, dict[str, Any]]:
    """name → keyword arguments of every top-level `@decorator("name", **literals)` in the
    modules of `folder`, ordered by their `order` argument."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef):
                continue
            for call in node.decorator_list:
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == decorator
                ):
                    continue
                where = f"{path.name}:{call.lineno}"
                try:
                    (name,) = [ast.literal_eval(a) for a in call.args]
                    options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                except (ValueError, TypeError) as exc:
                    raise ValueError(
                        f"{where}: @{decorator} takes the name and keyword literals only ({exc})"
                    ) from None
                if not isinstance(name, str) or None in options or "order" not in options:
                    raise ValueError(f'{where}: write @{decorator}("name", order=N, ...)')
                if name in found:
                    raise ValueError(f"{where}: {decorator} '{name}' is declared twice")
                found[name] = options
    return dict(sorted(found.items(), key=lambda item: item[1]["order"]))


def _loss_needs(options: dict[str, Any]) -> LossNeeds:
    return LossNeeds(bias=options.get("bias", False), teacher=options.get("teacher", False))


def _method_facts(options: dict[str, Any]) -> MethodFacts:
    return MethodFacts(**{k: v for k, v in options.items() if k != "order"})


_LOSSES = declared(LOSSES_DIR, "register_loss")
LOSS_NEEDS: dict[str, LossNeeds] = {name: _loss_needs(options) for name, options in _LOSSES.items()}
LOSS_DESCRIPTIONS: dict[str, str] = {
    n: options.get("description", "") for n, options in _LOSSES.items()
}
METHOD_FACTS: dict[str, MethodFacts] = {
    name: _method_facts(options)
    for name, options in declared(METHODS_DIR, "register_method").items()
}
LOSS_NAMES: tuple[str, ...] = tuple(LOSS_NEEDS)
METRIC_NAMES: tuple[str, ...] = ("accuracy", "f1", "hans", "paws", "fever_symmetric")
METHOD_NAMES: tuple[str, ...] = tuple(METHOD_FACTS)

LossName = Literal[LOSS_NAMES]  # type: ignore[valid-type]
MetricName = Literal[METRIC_NAMES]  # type: ignore[valid-type]
MethodName = Literal[METHOD_NAMES]  # type: ignore[valid-type]


def loss_needs(name: str) -> LossNeeds:
    try:
        return LOSS_NEEDS[name]
    except KeyError:
        raise ValueError(f"unknown loss '{name}'; known: {', '.join(LOSS_NAMES)}") from None


def method_facts(name: str) -> MethodFacts:
    try:
        return METHOD_FACTS[name]
    except KeyError:
        known = ", ".join(METHOD_NAMES)
        raise ValueError(f"unknown pruning method '{name}'; known: {known}") from None
