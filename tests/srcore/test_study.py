"""Studies: expansion of a base spec and axes into jobs, and validation."""

import pytest

from srcore.jobspec.study import (
    MAX_STUDY_JOBS,
    StudyError,
    expand_study,
)
from tests.helpers.study import small_study as _study


def test_grid_rows_and_dense_references_expand_to_ordinary_jobs():
    study = _study(
        axes=[{"path": "debias.loss", "values": ["none", "poe", "reweight", "conf_reg"]}],
        rows=[
            {"name": "IMP (poe)", "overrides": {"pruning.method": "imp", "debias.loss": "poe"}},
            {
                "name": "frozen (poe)",
                "overrides": {"pruning.scenario": "pretrained_frozen", "debias.loss": "poe"},
            },
        ],
    )
    children = expand_study(study)
    search = [c for c in children if c.role == "search"]
    refs = [c for c in children if c.role == "reference"]
    assert [c.spec.debias.loss for c in search[:4]] == ["none", "poe", "reweight", "conf_reg"]
    assert search[4].spec.pruning.method == "imp" and search[4].label == "IMP (poe)"
    assert search[5].spec.pruning.scenario == "pretrained_frozen"
    # one dense reference per loss, fine-tuned with that loss, pruned by one-shot magnitude
    assert [r.spec.debias.loss for r in refs] == ["none", "poe", "reweight", "conf_reg"]
    assert [r.spec.dense.loss for r in refs] == ["none", "job", "job", "job"]
    assert {r.spec.pruning.method for r in refs} == {"magnitude"}
    # seeds and sparsities stay inside each job; the data and training are the base's
    assert all(c.spec.training.seeds == [1, 2, 3] for c in children)
    assert all(c.spec.pruning.sparsities == [0.5, 0.7] for c in children)
    assert all(c.spec.data.max_train_examples == 64 for c in children)
    assert len({c.key for c in children}) == len(children)


def test_a_product_of_axes():
    study = _study(
        axes=[
            {"path": "debias.loss", "values": ["poe", "reweight"]},
            {"path": "pruning.init", "values": ["hard", "soft"]},
        ],
        dense_references=False,
    )
    children = expand_study(study)
    assert [(c.spec.debias.loss, c.spec.pruning.init) for c in children] == [
        ("poe", "hard"),
        ("poe", "soft"),
        ("reweight", "hard"),
        ("reweight", "soft"),
    ]
    assert children[1].label == "loss poe, init soft"


def test_unknown_axis_path_is_named_with_a_suggestion():
    with pytest.raises(StudyError) as err:
        expand_study(_study(axes=[{"path": "debias.los", "values": ["poe"]}]))
    assert err.value.field == "axes[0].path"
    assert "debias.loss" in str(err.value)


def test_a_bad_value_names_its_axis_and_the_spec_field():
    study = _study(
        axes=[
            {"path": "debias.loss", "values": ["poe"]},
            {"path": "training.batch_size", "values": [16, 0]},
        ]
    )
    with pytest.raises(StudyError) as err:
        expand_study(study)
    assert err.value.field == "axes[1]"
    assert "training.batch_size" in str(err.value)


def test_seeds_and_sparsities_are_not_axes_and_axes_do_not_repeat():
    with pytest.raises(ValueError, match="stays inside each job"):
        _study(axes=[{"path": "training.seeds", "values": [[1], [2]]}])
    with pytest.raises(ValueError, match="already an axis"):
        _study(
            axes=[
                {"path": "debias.loss", "values": ["poe"]},
                {"path": "debias.loss", "values": ["none"]},
            ]
        )


def test_grid_size_is_capped_and_the_cap_is_stated():
    study = _study(
        axes=[
            {"path": "training.learning_rate", "values": [i * 1e-4 for i in range(1, 17)]},
            {"path": "training.batch_size", "values": [8, 16, 32, 64, 128]},
        ]
    )
    with pytest.raises(StudyError, match=f"at most {MAX_STUDY_JOBS}"):
        expand_study(study)
