"""The submit form's presets: the jobs' examples (`api.jobs.examples`), described for the form."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from api.jobs.examples import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "presets_description"]


def presets_description() -> list[dict[str, Any]]:
    return [asdict(p) for p in PRESETS]
