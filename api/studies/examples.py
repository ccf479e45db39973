"""The studies' OpenAPI request example: a study built on the first job example."""

from __future__ import annotations

from typing import Any

from api.jobs.examples import PRESETS


def study_openapi_examples() -> dict[str, dict[str, Any]]:
    """A study built on the first preset: its losses side by side, each with a dense reference."""
    base = {k: v for k, v in PRESETS[0].spec.items() if k not in ("name", "debias")}
    return {
        "losses": {
            "summary": "MNLI mask training: CE against PoE at 50/70/90%",
            "description": "The first preset as the base, `debias.loss` as the axis; the dense "
            "model of every loss and its one-shot magnitude subnetworks are added as references.",
            "value": {
                "name": "mnli-losses",
                "base": {**base, "training": {"seeds": [1, 2, 3]}},
                "axes": [{"path": "debias.loss", "values": ["none", "poe"]}],
            },
        }
    }
