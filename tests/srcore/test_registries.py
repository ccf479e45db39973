"""Each registry and the torch-free names the spec accepts stay in step: adding a loss, a
metric or a pruning method is its implementation (registered under a declared name) plus its
test."""

from __future__ import annotations

import typing

import pytest

from srcore.evaluation import METRICS, register_metric
from srcore.jobspec import spec as spec_module
from srcore.jobspec.names import LOSS_NAMES, LOSS_NEEDS, METHOD_NAMES, METRIC_NAMES
from srcore.losses import LOSSES, register_loss
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.run import SEARCH_METHODS


def test_every_declared_loss_is_registered_with_its_needs():
    assert set(LOSSES) == set(LOSS_NAMES)
    assert {n: loss.needs for n, loss in LOSSES.items()} == LOSS_NEEDS
    assert LOSSES["conf_reg"].needs.teacher and LOSSES["poe"].needs.bias
    assert not LOSSES["none"].needs.bias


def test_every_declared_metric_and_method_is_registered():
    assert set(METRICS) == set(METRIC_NAMES)
    assert METRICS["hans"].entailment_vs_rest and not METRICS["paws"].entailment_vs_rest
    assert set(SEARCH_METHODS) == set(METHOD_NAMES)


def test_the_spec_literals_are_the_declared_names():
    assert typing.get_args(spec_module.LossName) == LOSS_NAMES
    assert typing.get_args(spec_module.MetricName) == METRIC_NAMES
    assert typing.get_args(spec_module.MethodName) == METHOD_NAMES


def test_an_undeclared_name_cannot_register():
    with pytest.raises(ValueError, match="not declared"):
        register_loss("focal")
    with pytest.raises(ValueError, match="not declared"):
        register_metric("bleu")
    with pytest.raises(ValueError, match="twice"):
        register_loss("poe")(lambda logits, labels, bias: logits.sum())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, dict(start="dense", dense_loss="none", teacher=None, needs_bias=False)),
        ({"debias": {"loss": "poe"}}, dict(dense_loss="none", needs_bias=True)),
        ({"debias": {"loss": "conf_reg"}, "dense": {"loss": "job"}},
         dict(dense_loss="conf_reg", teacher="dense", needs_bias=True)),
        ({"pruning": {"scenario": "pretrained_frozen"}},
         dict(start="pretrained", dense_loss=None, retrain_loss=None)),
        ({"pruning": {"scenario": "pretrained_frozen"}, "debias": {"loss": "conf_reg"}},
         dict(start="pretrained", dense_loss="none", teacher="dense")),
        ({"pruning": {"scenario": "pretrained_retrain", "method": "mask_training"}},
         dict(start="dense", dense_loss="none", retrain_loss="none")),
        ({"pruning": {"scenario": "pretrained_retrain", "method": "magnitude",
                      "retrain_loss": "reweight"}},
         dict(start="pretrained", dense_loss=None, retrain_loss="reweight", needs_bias=True)),
        ({"debias": {"loss": "conf_reg", "teacher": {"source": "file", "path": "/t.jsonl"}},
          "pruning": {"scenario": "pretrained_frozen"}},
         dict(start="pretrained", dense_loss=None, teacher="file")),
    ],
)  # fmt: skip
def test_the_stage_plan_of_a_spec(spec, expected):
    plan = StagePlan.from_spec(spec_module.JobSpec.model_validate(spec))
    assert {k: getattr(plan, k) for k in expected} == expected
