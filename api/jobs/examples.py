"""The jobs' examples: the paper's settings as partial job specs (every field not named keeps
its default). They are `POST /jobs`' OpenAPI request examples and the web form's presets; each
one must validate as a `JobCreate` and resolve (tests check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Preset:
    id: str
    title: str
    description: str
    spec: dict[str, Any]


PRESETS: tuple[Preset, ...] = (
    Preset(
        id="mnli-poe-mask",
        title="MNLI · PoE · mask training · 50/70/90%",
        description="Scenario 1: mask training on the dense fine-tuned model with the "
        "product-of-experts loss; HANS is the OOD set.",
        spec={
            "name": "mnli-poe-mask-50-70-90",
            "task": "mnli",
            "debias": {"loss": "poe"},
            "pruning": {
                "method": "mask_training",
                "scenario": "finetuned",
                "sparsities": [0.5, 0.7, 0.9],
            },
        },
    ),
    Preset(
        id="mnli-poe-gradual",
        title="MNLI · PoE · gradual sparsity 0.7 → 0.9",
        description="The paper's fix for high sparsity: a cubic schedule from 70% with soft "
        "score init.",
        spec={
            "name": "mnli-poe-gradual-90",
            "task": "mnli",
            "debias": {"loss": "poe"},
            "pruning": {
                "method": "mask_training",
                "schedule": "gradual",
                "initial_sparsity": 0.7,
                "sparsities": [0.9],
            },
        },
    ),
    Preset(
        id="qqp-reweight-imp",
        title="QQP · reweight · IMP",
        description="Iterative magnitude pruning (10% per round) with example reweighting; "
        "selection by F1 on QQP dev, PAWS as the OOD set.",
        spec={
            "name": "qqp-reweight-imp",
            "task": "qqp",
            "debias": {"loss": "reweight"},
            "pruning": {"method": "imp", "imp_rate": 0.1, "sparsities": [0.5, 0.7, 0.9]},
        },
    ),
    Preset(
        id="mnli-confreg-imp-rewind",
        title="MNLI · conf_reg · IMP with rewinding (scenario 2)",
        description="Lottery-ticket style: masks from IMP with rewinding, then the masked "
        "pre-trained model is fine-tuned with confidence regularisation.",
        spec={
            "name": "mnli-confreg-imp-rewind",
            "task": "mnli",
            "debias": {"loss": "conf_reg"},
            "pruning": {
                "method": "imp",
                "scenario": "pretrained_retrain",
                "rewind": True,
                "sparsities": [0.5, 0.7],
            },
        },
    ),
    Preset(
        id="mnli-ce-frozen",
        title="MNLI · CE · frozen (scenario 3)",
        description="Mask training directly on the pre-trained model with a random, frozen "
        "classifier: no weight is trained; selection over the whole run.",
        spec={
            "name": "mnli-ce-frozen",
            "task": "mnli",
            "debias": {"loss": "none"},
            "pruning": {
                "method": "mask_training",
                "scenario": "pretrained_frozen",
                "sparsities": [0.5, 0.7],
            },
            "training": {"select_last_fraction": 1.0},
        },
    ),
    Preset(
        id="quick-cpu",
        title="Quick try-out (bundled sample, a few minutes on a CPU)",
        description="MNLI sample rows, PoE, one sparsity, a few steps: checks the whole "
        "pipeline, not the science.",
        spec={
            "name": "quick-try-out",
            "task": "mnli",
            "queue": "cpu",
            "data": {"max_train_examples": 256, "max_eval_examples": 128},
            "debias": {"loss": "poe"},
            "pruning": {"sparsities": [0.5]},
            "dense": {"max_steps": 30},
            "training": {"max_steps": 30, "batch_size": 16, "eval_every": 10},
        },
    ),
)


def openapi_examples() -> dict[str, dict[str, Any]]:
    """The presets as OpenAPI request examples of `POST /jobs` (Swagger UI offers them)."""
    return {
        p.id: {"summary": p.title, "description": p.description, "value": p.spec} for p in PRESETS
    }
