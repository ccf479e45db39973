import json

import pytest
from pydantic import ValidationError

from srcore.jobspec.spec import JobSpec, load_spec
from srcore.jobspec.task_registry import TaskConfigError, resolve_task


def _errors(payload: dict) -> str:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(payload)
    return json.dumps(info.value.errors(include_url=False, include_context=False), default=str)


def test_defaults_follow_the_paper():
    spec = JobSpec()
    assert spec.task == "mnli"
    assert spec.training.batch_size == 32 and spec.training.max_length == 128
    assert spec.training.epochs == 5 and spec.dense.epochs == 3
    assert spec.pruning.threshold == 0.01 and spec.pruning.sparsities == [0.5]
    # soft scores by default (the studies: hard scores do not cross τ at small budgets)
    assert spec.pruning.score_init == "soft"
    assert (
        spec.model_copy(
            update={"pruning": spec.pruning.model_copy(update={"init": "hard"})}
        ).pruning.score_init
        == "hard"
    )


def test_unknown_field_is_named():
    text = _errors({"training": {"batchsize": 3}})
    assert "batchsize" in text and "extra_forbidden" in text


@pytest.mark.parametrize("value", [0.0, 1.0, 1.5, -0.1])
def test_sparsity_outside_open_interval(value):
    assert "sparsities" in _errors({"pruning": {"sparsities": [value]}})


def test_imp_with_gradual_is_rejected():
    assert "gradual" in _errors(
        {"pruning": {"method": "imp", "schedule": "gradual", "sparsities": [0.9]}}
    )


def test_imp_sparsity_must_be_reachable():
    assert "imp_rate" in _errors({"pruning": {"method": "imp", "sparsities": [0.55]}})
    spec = JobSpec.model_validate({"pruning": {"method": "imp", "sparsities": [0.7, 0.3]}})
    assert spec.pruning.sparsities == [0.3, 0.7]


def test_conf_reg_needs_a_teacher():
    text = _errors({"debias": {"loss": "conf_reg", "teacher": {"source": "none"}}})
    assert "teacher" in text


def test_gradual_start_must_be_below_target():
    assert "initial_sparsity" in _errors(
        {"pruning": {"schedule": "gradual", "initial_sparsity": 0.8, "sparsities": [0.7]}}
    )
    spec = JobSpec.model_validate({"pruning": {"schedule": "gradual", "sparsities": [0.9]}})
    assert spec.pruning.score_init == "soft" and spec.pruning.schedule_start == 0.7


def test_frozen_scenario_needs_mask_training():
    assert "pretrained_frozen" in _errors(
        {"pruning": {"method": "imp", "scenario": "pretrained_frozen", "sparsities": [0.5]}}
    )


def test_custom_task_needs_files_and_labels():
    assert "custom task needs train, dev, labels" in _errors({"task": "custom"})


def test_source_needs_exactly_one_location():
    assert "exactly one" in _errors({"data": {"train": {"format": "pair_json"}}})


def test_resolve_fever_without_train_is_a_clear_error():
    with pytest.raises(TaskConfigError, match=r"data\.train"):
        resolve_task(JobSpec(task="fever"))


def test_resolve_unknown_ood_set():
    spec = JobSpec.model_validate({"evaluation": {"ood_sets": ["paws_qqp"]}})
    with pytest.raises(TaskConfigError, match="paws_qqp"):
        resolve_task(spec)


def test_round_trip_json():
    spec = JobSpec.model_validate({"task": "qqp", "debias": {"loss": "poe"}})
    assert load_spec(spec.model_dump_json()) == spec
    assert resolve_task(spec).selection_metric == "f1"


def test_every_field_has_a_description():
    """The spec is the one source of field help (API docs, web form, CLI)."""
    schema = JobSpec.model_json_schema()
    models = {"JobSpec": schema, **schema.get("$defs", {})}
    missing = [
        f"{model}.{name}"
        for model, body in models.items()
        for name, prop in body.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert missing == []


def test_every_leaf_field_has_a_description():
    schema = JobSpec.model_json_schema()
    defs = schema.get("$defs", {})

    def leaves(properties: dict, prefix: str):
        for name, prop in properties.items():
            target = defs[prop["$ref"].rsplit("/", 1)[-1]] if "$ref" in prop else None
            if target is not None and "properties" in target:
                yield from leaves(target["properties"], prefix + name + ".")
            yield prefix + name, prop

    found = dict(leaves(schema["properties"], ""))
    assert "pruning.threshold" in found and "model.name_or_path" in found
    assert [path for path, prop in found.items() if not prop.get("description")] == []


def test_spec_hash_is_canonical_and_shared_with_the_pipeline():
    from srcore.jobspec.spec import spec_hash
    from srcore.pipeline import run

    spec = JobSpec.model_validate({"task": "mnli", "name": "Débiaisé · 偏り"})
    again = load_spec(json.dumps(json.loads(spec.model_dump_json()), indent=3))
    assert spec_hash(spec) == spec_hash(again) and len(spec_hash(spec)) == 64
    assert spec_hash(spec) != spec_hash(spec.model_copy(update={"name": "Debiaise"}))
    assert run.spec_hash is spec_hash  # masks and reports carry the API's hash
