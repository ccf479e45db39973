"""The example and split types every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Example:
    """One sentence pair. `label` indexes the split's `label_names`."""

    uid: str
    text_a: str
    text_b: str
    label: int
    meta: dict[str, str] = field(default_factory=dict)  # e.g. HANS heuristic, subcase


@dataclass(frozen=True)
class Split:
    """A loaded split: its examples, label space and where it came from."""

    name: str
    examples: list[Example]
    label_names: tuple[str, ...]
    origin: str  # file path or hub id, for messages and reports

    def __len__(self) -> int:
        return len(self.examples)
