"""Each registry and the torch-free names the spec accepts stay in step: adding a loss or a
pruning method is one file (its decorator is its declaration) plus its test; a metric is its
implementation registered under a declared name plus its test."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest

from srcore.evaluation import METRICS, register_metric
from srcore.jobspec import spec as spec_module
from srcore.jobspec.names import (
    LOSS_DESCRIPTIONS,
    LOSS_NAMES,
    LOSS_NEEDS,
    METHOD_FACTS,
    METHOD_NAMES,
    METRIC_NAMES,
    declared,
    loss_needs,
    method_facts,
)
from srcore.losses import LOSSES, debias_loss, register_loss
from srcore.pipeline.methods import METHODS, pruning_method, register_method
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.progress import expected_work
from srcore.pruning.score_lr import PAPER_SCORE_LR, WEIGHT_LR
from srcore.training.budget import evaluation_interval, planned_steps

ROOT = Path(__file__).resolve().parents[2]


def test_every_declared_loss_is_registered_with_its_needs():
    assert set(LOSSES) == set(LOSS_NAMES)
    assert {n: loss.needs for n, loss in LOSSES.items()} == LOSS_NEEDS
    assert LOSSES["conf_reg"].needs.teacher and LOSSES["poe"].needs.bias
    assert not LOSSES["none"].needs.bias


def test_every_declared_metric_and_method_is_registered():
    assert set(METRICS) == set(METRIC_NAMES)
    assert METRICS["hans"].entailment_vs_rest and not METRICS["paws"].entailment_vs_rest
    assert set(METHODS) == set(METHOD_NAMES)
    assert {n: m.facts for n, m in METHODS.items()} == METHOD_FACTS
    assert all(METHODS[n].name == n for n in METHOD_NAMES)


def test_the_spec_literals_are_the_declared_names():
    assert typing.get_args(spec_module.LossName) == LOSS_NAMES
    assert typing.get_args(spec_module.MetricName) == METRIC_NAMES
    assert typing.get_args(spec_module.MethodName) == METHOD_NAMES


def test_the_declared_order_is_the_spec_order():
    # the form's options and the OpenAPI enums list them in this order
    assert LOSS_NAMES == ("none", "poe", "reweight", "conf_reg")
    assert METHOD_NAMES == ("mask_training", "imp", "magnitude")
    assert METHOD_FACTS["mask_training"].retrain_mask_from == "dense"
    assert METHOD_FACTS["imp"].retrain_mask_from == "pretrained"
    assert LOSS_DESCRIPTIONS["poe"] == "product of experts with a bias model"


NOT_A_NAME = "no_such_name"  # never a loss, metric or method, whatever gets added


def test_an_undeclared_name_cannot_register():
    with pytest.raises(ValueError, match="not declared"):
        register_loss(NOT_A_NAME, order=9)
    with pytest.raises(ValueError, match="not declared"):
        register_metric(NOT_A_NAME)
    with pytest.raises(ValueError, match="not declared"):
        register_method(NOT_A_NAME, order=9)
    with pytest.raises(ValueError, match="twice"):
        register_loss("poe", order=1, bias=True)(lambda logits, labels, bias: logits.sum())
    with pytest.raises(ValueError, match="twice"):
        register_method("imp", order=1, description="iterative magnitude pruning (IMP)")(object)
    # registering with other needs than the file declares is refused
    with pytest.raises(ValueError, match="declares"):
        register_loss("poe", order=1)
    with pytest.raises(ValueError, match="declares"):
        register_method("imp", order=1, retrain_mask_from="dense")


def test_an_unknown_name_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown loss 'no_such_name'; known: none, poe"):
        loss_needs(NOT_A_NAME)
    with pytest.raises(ValueError, match="unknown loss"):
        debias_loss(NOT_A_NAME, None, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown pruning method 'no_such_name'"):
        method_facts(NOT_A_NAME)
    with pytest.raises(ValueError, match="unknown pruning method"):
        pruning_method(NOT_A_NAME)


def test_a_new_file_is_a_new_declared_name(tmp_path):
    """What `srcore.jobspec.names` reads from a loss file: adding one declares its name."""
    (tmp_path / "focal.py").write_text(
        "from srcore.losses.registry import register_loss\n\n"
        '@register_loss("focal", order=4, bias=False, description="focal loss")\n'
        "def focal(logits, labels):\n    return logits.sum()\n"
    )
    (tmp_path / "helpers.py").write_text("def register_loss_later():\n    pass\n")
    assert declared(tmp_path, "register_loss") == {
        "focal": {"order": 4, "bias": False, "description": "focal loss"}
    }


@pytest.mark.parametrize(
    ("decorator", "error"),
    [
        ('@register_loss("a", order=0, bias=USE_BIAS)', "keyword literals only"),
        ("@register_loss(NAME, order=0)", "keyword literals only"),
        ('@register_loss("a")', "order=N"),
        ('@register_loss("a", order=0, **more)', "keyword literals only"),
        ('@register_loss("a", **{"order": 0})', "order=N"),
    ],
)
def test_a_declaration_must_be_literal(tmp_path, decorator, error):
    (tmp_path / "bad.py").write_text(f"{decorator}\ndef bad(logits, labels):\n    pass\n")
    with pytest.raises(ValueError, match=error) as failure:
        declared(tmp_path, "register_loss")
    assert "bad.py:1" in str(failure.value)  # the message names the file and line


def test_a_name_declared_twice_is_refused(tmp_path):
    for file in ("a.py", "b.py"):
        (tmp_path / file).write_text('@register_loss("x", order=0)\ndef x(z, y):\n    pass\n')
    with pytest.raises(ValueError, match=r"b\.py:1: register_loss 'x' is declared twice"):
        declared(tmp_path, "register_loss")


def test_each_method_names_its_default_rate_unless_the_spec_sets_one():
    assert METHODS["mask_training"].learning_rate(None) == PAPER_SCORE_LR == 5e-5
    assert METHODS["imp"].learning_rate(None) == WEIGHT_LR == 5e-5
    assert METHODS["mask_training"].learning_rate(1e-3) == 1e-3


def test_the_step_and_evaluation_rule_is_the_trainers_and_the_progress_estimates():
    assert planned_steps(2.5, 4, None) == 10 and planned_steps(0.01, 4, None) == 1
    assert planned_steps(3, 4, max_steps=7) == 7
    assert evaluation_interval(100, None) == 10 and evaluation_interval(5, None) == 1
    assert evaluation_interval(100, 30) == 30
    training = {"batch_size": 10, "epochs": 3, "seeds": [1]}
    spec = spec_module.JobSpec.model_validate({"training": training})
    search = next(w for w in expected_work(spec, StagePlan.from_spec(spec), 95, 7)
                  if w.stage == "search")  # fmt: skip
    # 10 batches of ≤10 examples × 3 epochs = 30 steps, an evaluation every 3 steps
    assert (search.runs, search.steps, search.evaluations) == (1, 30, 10)


SCENARIOS = {"finetuned", "pretrained_retrain", "pretrained_frozen"}
# Where a job runs; study_run expands studies (their own axes) and reads no job's plan.
JOB_MODULES = [
    p for p in sorted((ROOT / "srcore" / "pipeline").rglob("*.py"))
    if p.name not in {"plan.py", "study_run.py"}
]  # fmt: skip


def test_only_the_plan_reads_the_pruning_section_and_tests_scenario_or_method():
    assert {"run.py", "search.py", "progress.py", "imp.py"} <= {p.name for p in JOB_MODULES}
    found = []
    for path in JOB_MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr == "pruning":
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name == "spec":  # spec.pruning, ctx.spec.pruning
                    found.append(f"{where} reads spec.pruning")
            if isinstance(node, ast.Constant) and node.value in SCENARIOS:
                found.append(f"{where} names scenario {node.value}")
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "method" for s in sides):
                    found.append(f"{where} compares a method")
    assert found == []


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
