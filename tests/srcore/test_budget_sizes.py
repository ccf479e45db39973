"""`srcore.jobspec.budget.training_runs`, the torch-free size of a job the web form's presets
state (issue 19 item 4), against the plan the running job reports its progress by."""

from __future__ import annotations

from collections import defaultdict

import pytest

from api.jobs.examples import PRESETS
from api.jobs.schemas import JobCreate
from srcore.jobspec.budget import training_runs
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.plan import StagePlan
from srcore.pipeline.progress import expected_work

SPECS = {
    **{p.id: JobCreate.model_validate(p.spec).spec() for p in PRESETS},
    "conf_reg dense on its loss, 2 seeds": JobSpec.model_validate(
        {"debias": {"loss": "conf_reg"}, "dense": {"loss": "job"}, "training": {"seeds": [1, 2]}}
    ),
    "early start": JobSpec.model_validate({"dense": {"stop_at_step": 100}}),
    "magnitude": JobSpec.model_validate({"pruning": {"method": "magnitude"}}),
    "mask found on dense, retrained": JobSpec.model_validate(
        {"pruning": {"scenario": "pretrained_retrain", "sparsities": [0.5, 0.7]}}
    ),
    "eval_every, max_steps": JobSpec.model_validate(
        {"training": {"max_steps": 77, "eval_every": 20}, "dense": {"max_steps": 50}}
    ),
}


def _by_stage(rows) -> dict[str, tuple[int, int, int]]:
    found: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        if r.steps:
            found[r.stage][0] += r.runs
            found[r.stage][1:] = [r.steps, r.evaluations]
    return {k: tuple(v) for k, v in found.items()}


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("train_examples", [8999, 256, 1000])
def test_the_size_is_the_one_the_job_plans_with(name, train_examples):
    spec = SPECS[name]
    planned = expected_work(spec, StagePlan.from_spec(spec), train_examples, 100)
    assert _by_stage(training_runs(spec, train_examples)) == _by_stage(planned)


def test_sizes_of_two_presets_in_numbers():
    runs = training_runs(SPECS["mnli-poe-mask"], 8999)  # 282 batches of 32 per epoch
    assert [(r.stage, r.runs, r.steps, r.evaluations) for r in runs] == [
        ("dense", 1, 846, 11),  # 3 epochs
        ("search", 3, 1410, 10),  # 5 epochs, one run per sparsity
    ]
    runs = training_runs(SPECS["quick-cpu"], 256)
    assert [(r.stage, r.runs, r.steps, r.evaluations) for r in runs] == [
        ("dense", 1, 30, 3),
        ("search", 1, 30, 3),
    ]


@pytest.mark.parametrize("task", ["mnli", "qqp"])
def test_the_bundled_row_counts_the_presets_use_are_the_samples(task):
    from api.web.presets import BUNDLED_TRAIN_ROWS
    from srcore.data.loaders import load_split
    from srcore.jobspec.task_registry import resolve_task

    resolved = resolve_task(JobSpec.model_validate({"task": task}))
    split = load_split(resolved.train, resolved.labels, name="train", seed=0)
    assert len(split.examples) == BUNDLED_TRAIN_ROWS[task]
