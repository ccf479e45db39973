"""The client reads a point's sets from the service's typed `evaluation`, not by guessing which
payload keys are sets; only an answer without it (a service older than the typed evaluation)
falls back to the payload."""

from __future__ import annotations

from srnet.client import MetricPoint

POINT = {"id": 1, "stage": "search", "step": 20, "seed": 1, "sparsity": None, "selected": True}


def test_sets_and_sparsity_come_from_the_evaluation():
    point = MetricPoint.from_json(
        {
            **POINT,
            # "probe" has no accuracy or F1 (a registered metric of its own): a set all the same.
            "payload": {"probe": {"brier": 0.2, "n": 10}, "sparsity": 0.7, "selection": 0.6},
            "evaluation": {
                "sets": {"probe": {"brier": 0.2, "n": 10}},
                "sparsity": 0.7,
                "selection": 0.6,
                "train_loss": None,
                "extras": {},
            },
        }
    )
    assert point.eval_sets() == {"probe": {"brier": 0.2, "n": 10}}
    assert point.effective_sparsity == 0.7


def test_an_older_service_without_evaluation_still_reads():
    point = MetricPoint.from_json(
        {**POINT, "payload": {"dev": {"accuracy": 0.6}, "movement": {"f1": 1}, "sparsity": 0.5}}
    )
    assert point.evaluation == {}
    assert point.eval_sets() == {"dev": {"accuracy": 0.6}}
    assert point.effective_sparsity == 0.5
