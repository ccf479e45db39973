"""The pruning-method registry: each method is one module of this package, a `PruningMethod`
subclass decorated `@register_method("name", order=N, retrain_mask_from=…, description=…)`.

The decorator's arguments are the method's torch-free declaration (`srcore.jobspec.names`
reads them from the source for the spec's `MethodName` and the `StagePlan`); the class carries
the rest: the search stage, its expected work, its default learning rate and which weights
its masks cover.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from torch import nn

from srcore.jobspec.names import METHOD_FACTS, MethodFacts
from srcore.jobspec.spec import PruningSpec, TrainingSpec
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.work import StageWork, WorkModel

if TYPE_CHECKING:
    from srcore.pipeline.search import Found
    from srcore.pipeline.stages import StageContext

ModelFactory = Callable[[], nn.Module]  # a fresh copy of the model the search starts from


class PruningMethod(ABC):
    """One pruning method: how it searches, how much work that is, its default rate."""

    name: ClassVar[str]
    facts: ClassVar[MethodFacts]
    default_lr: ClassVar[float]  # the search's rate when `training.learning_rate` is not set

    def learning_rate(self, explicit: float | None) -> float:
        """The search stage's learning rate: the spec's, else the method's default."""
        return self.default_lr if explicit is None else explicit

    def masks_classifier(self, pruning: PruningSpec) -> bool:
        """Whether the masks cover the classifier weight too (never in a scenario-2 retrain,
        whose classifier is new)."""
        return False

    @abstractmethod
    def search(self, ctx: StageContext, start: ModelFactory) -> Iterator[Found]:
        """One `Found` per reached target sparsity of `ctx.plan`, in any order."""

    @abstractmethod
    def search_work(self, plan: StagePlan, training: TrainingSpec, work: WorkModel) -> StageWork:
        """The expected work of the search stage of one seed."""


METHODS: dict[str, PruningMethod] = {}


def register_method(
    name: str,
    *,
    order: int,
    retrain_mask_from: Literal["dense", "pretrained"] = "pretrained",
    description: str = "",
) -> Callable[[type[PruningMethod]], type[PruningMethod]]:
    """Register the class as method `name`; `order` places the name in the spec's list."""
    facts = MethodFacts(retrain_mask_from=retrain_mask_from, description=description)
    if name not in METHOD_FACTS:
        raise ValueError(
            f"pruning method '{name}' is not declared: a method is a module of "
            f'srcore/pipeline/methods/ whose class is decorated @register_method("{name}", ...)'
        )
    if METHOD_FACTS[name] != facts:
        raise ValueError(
            f"method '{name}' registers {facts}, its file declares {METHOD_FACTS[name]}"
        )

    def register(cls: type[PruningMethod]) -> type[PruningMethod]:
        if name in METHODS:
            raise ValueError(f"pruning method '{name}' is registered twice")
        cls.name, cls.facts = name, facts
        METHODS[name] = cls()
        return cls

    return register


def pruning_method(name: str) -> PruningMethod:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(METHODS)
        raise ValueError(f"unknown pruning method '{name}'; known: {known}") from None
