"""Whole-job progress: stages weighed by their expected work, the ETA from measured speed,
every callback forwarded."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from srcore.jobspec.callbacks import Callbacks, Progress
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.progress import JobProgress, StageWork, expected_work
from tests.helpers.callbacks import RecordingCallbacks


def spec(**overrides) -> JobSpec:
    base = {
        "training": {"batch_size": 10, "max_steps": 100, "eval_every": 50, "seeds": [1]},
        "dense": {"max_steps": 100},
        "pruning": {"sparsities": [0.5]},
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value}
    return JobSpec.model_validate(base)


def test_the_expected_stages_follow_the_plan():
    s = spec(
        pruning={"scenario": "pretrained_retrain", "method": "imp", "sparsities": [0.1, 0.2]},
        debias={"loss": "poe"},
        training={"max_steps": None, "imp_round_epochs": 1, "seeds": [1, 2]},
    )
    stages = expected_work(s, StagePlan.from_spec(s), train_examples=200, eval_examples=100)
    per_seed = ["search", "retrain", "export", "retrain", "export"]  # IMP, scenario 2: no dense
    assert [w.stage for w in stages] == ["data", "bias", *per_seed, *per_seed, "export"]
    search = stages[2]
    # two IMP rounds of one epoch: 20 steps of 10 examples × 3 forwards, evaluations every 2
    assert (search.runs, search.steps, search.evaluations) == (2, 20, 1)
    assert search.work == pytest.approx(2 * (20 * 30 + 1 * 100))
    assert stages[1].work > 0  # poe needs the bias model


def test_conf_reg_with_a_ce_dense_model_counts_the_teacher_once():
    s = spec(debias={"loss": "conf_reg"})
    stages = expected_work(s, StagePlan.from_spec(s), 100, 50)
    dense = [w for w in stages if w.stage == "dense"]
    assert [w.work > 0 for w in dense] == [True, False]  # the second is the cached teacher


def tracked(stages: list[StageWork]) -> tuple[JobProgress, RecordingCallbacks, list[float]]:
    now = [0.0]
    inner = RecordingCallbacks()
    tracker = JobProgress(inner, clock=lambda: now[0])
    tracker.on_stage("data")
    tracker.plan(stages)
    return tracker, inner, now


def test_the_job_fraction_weighs_stages_by_their_work_and_skips_cached_ones():
    run = {"steps": 10, "evaluations": 1, "step_work": 20, "eval_work": 100}
    dense = StageWork("dense", 300.0, runs=1, **run)
    search = StageWork("search", 600.0, runs=2, **run)
    tracker, inner, now = tracked(
        [StageWork("data", 50.0), dense, search, StageWork("export", 50.0)]
    )
    tracker.on_stage("dense")
    for step in range(1, 11):
        now[0] += 1.0
        tracker.on_progress(Progress("dense", step, 10, detail="seed 1"))
    # 10 steps of 20 = 200 of the dense stage's 300 (its evaluation is still to come)
    assert inner.progress[-1].job_fraction == pytest.approx((50 + 200) / 1000)
    assert inner.progress[-1].elapsed_s == 10.0
    # measured 20 work units per second: 750 left take 37.5 s
    assert inner.progress[-1].job_eta_s == pytest.approx(750 / 20)
    tracker.on_progress(
        Progress("dense", 10, 10, detail="seed 1", phase="evaluate", eval_examples_done=50,
                 eval_examples_total=100)
    )  # fmt: skip
    assert inner.progress[-1].job_fraction == pytest.approx((50 + 250) / 1000)

    # the search's second run (another sparsity): the first run's work counts as done
    tracker.on_stage("search")
    tracker.on_progress(Progress("search", 10, 10, detail="0.5", evaluations_done=1))
    tracker.on_progress(Progress("search", 5, 10, detail="0.7"))
    assert inner.progress[-1].job_fraction == pytest.approx((50 + 300 + 300 + 100) / 1000)

    # a stage the plan expected but the job skipped (resumed, cached) is counted as done
    tracker.on_stage("export")
    assert tracker.fraction() == pytest.approx(950 / 1000)


def test_a_cached_stage_does_not_make_the_eta_optimistic():
    big = StageWork("dense", 1000.0, runs=1, steps=10, evaluations=0, step_work=100)
    search = StageWork("search", 100.0, runs=1, steps=10, evaluations=0, step_work=10)
    tracker, inner, now = tracked([StageWork("data", 0.0), big, search])
    tracker.on_stage("dense")  # answered by the stage cache at once: no progress
    tracker.on_stage("search")
    for step in range(1, 6):
        now[0] += 2.0
        tracker.on_progress(Progress("search", step, 10))
    # 5 units per second measured on the search only; 50 left
    assert inner.progress[-1].job_eta_s == pytest.approx(10.0)


def test_every_callback_is_forwarded():
    calls = []

    class Inner(Callbacks):
        pass

    inner = Inner()
    names = [n for n, _ in inspect.getmembers(Callbacks, inspect.isfunction) if n[:1] != "_"]
    for name in names:
        setattr(inner, name, lambda *args, name=name: calls.append(name))
    tracker = JobProgress(inner)
    arguments = {
        "on_stage": ("dense",),
        "on_progress": (Progress("dense", 1, 2),),
        "on_metrics": (None, 1, {}),
        "on_dense_point": (None,),
        "on_unit": (None,),
        "on_checkpoint": ("dense", 1, Path("x")),
        "should_stop": (),
    }
    assert set(arguments) == set(names)  # a new callback needs forwarding (and a line here)
    for name in names:
        getattr(tracker, name)(*arguments[name])
    assert calls == names
