"""pruning.init in the resolved spec (issue 19 item 11): the value that applies (soft for mask
training), none for methods without scores, and the hashes jobs and study folders were stored
with before the default was shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from srcore.jobspec.spec import JobSpec, spec_hash, spec_hashes
from srcore.jobspec.study import StudySpec, expand_study

# spec_hash of these specs as the srcore before this change computed them (init shown null)
BEFORE = {
    "default": (
        {"task": "mnli"},
        "1f9a8569ce7dc7e15df37f994fea3f71a07c73c1997c6965fb7b13ac3f74323d",
    ),
    "named soft": (
        {"task": "mnli", "pruning": {"init": "soft"}},
        "a79e201b706cfd1fb0570034b9583d7edae89ff5657252d7c872ce1abb939507",
    ),
    "hard": (
        {"task": "mnli", "pruning": {"init": "hard"}},
        "55b2687badb7b6933b194498c8dc7e8803447dad0603a04924310abfae0b892f",
    ),
    "imp": (
        {"task": "mnli", "pruning": {"method": "imp", "sparsities": [0.5]}},
        "3264c6429913abd41f85ca4c92ea763cab0d144bc7831869058b57822f1a8a1d",
    ),
    "gradual": (
        {"task": "mnli", "pruning": {"schedule": "gradual", "sparsities": [0.9]}},
        "186644880e4943943db8a15da795498c9ee29af3ce055dddfc81d5f59db70fa3",
    ),
}


@pytest.mark.parametrize(
    ("pruning", "shown"),
    [
        ({}, "soft"),
        ({"init": None}, "soft"),  # how stored specs wrote "not set"
        ({"schedule": "gradual", "sparsities": [0.9]}, "soft"),
        ({"init": "hard"}, "hard"),
        ({"method": "imp", "sparsities": [0.5]}, None),
        ({"method": "imp", "init": None, "sparsities": [0.5]}, None),
        ({"method": "magnitude"}, None),
    ],
)
def test_the_resolved_spec_shows_the_init_that_applies(pruning, shown):
    spec = JobSpec.model_validate({"task": "mnli", "pruning": pruning})
    dumped = spec.model_dump(mode="json")
    assert dumped["pruning"]["init"] == shown
    # the resolved spec is a spec: stored, re-read by the worker, it is the same job
    again = JobSpec.model_validate(dumped)
    assert again.pruning.init == shown and spec_hash(again) == spec_hash(spec)


@pytest.mark.parametrize("init", ["soft", "hard"])
@pytest.mark.parametrize("method", ["imp", "magnitude"])
def test_an_init_named_for_a_method_without_scores_is_refused(method, init):
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate({"pruning": {"method": method, "init": init, "sparsities": [0.5]}})
    (error,) = info.value.errors()
    assert error["loc"] == ("pruning",) and "init applies to mask_training only" in error["msg"]


@pytest.mark.parametrize("case", ["default", "hard", "imp", "gradual"])
def test_stored_jobs_keep_their_hash(case):
    payload, before = BEFORE[case]
    assert spec_hash(JobSpec.model_validate(payload)) == before
    assert before in spec_hashes(JobSpec.model_validate(payload))


def test_a_named_soft_is_the_default_job_and_keeps_its_old_hash_as_an_alias():
    default, named = (JobSpec.model_validate(BEFORE[k][0]) for k in ("default", "named soft"))
    assert named.model_dump() == default.model_dump()  # one job now
    assert spec_hash(named) == BEFORE["default"][1]
    assert spec_hashes(named) == {BEFORE["default"][1], BEFORE["named soft"][1]}
    hard = JobSpec.model_validate(BEFORE["hard"][0])
    assert spec_hashes(hard) == {BEFORE["hard"][1]}  # no alias where nothing changed


def test_a_study_s_imp_row_does_not_inherit_the_base_s_resolved_init():
    study = StudySpec.model_validate(
        {
            "base": {"task": "mnli", "pruning": {"method": "mask_training"}},
            "rows": [{"name": "IMP", "overrides": {"pruning.method": "imp"}}],
            "dense_references": False,
        }
    )
    base, imp = expand_study(study)
    assert base.spec.pruning.init == "soft" and imp.spec.pruning.init is None
    named = StudySpec.model_validate(
        {
            "base": {"task": "mnli", "pruning": {"init": "soft"}},
            "rows": [{"name": "IMP", "overrides": {"pruning.method": "imp"}}],
        }
    )
    with pytest.raises(Exception, match="init applies to mask_training only"):
        expand_study(named)  # a base that names an init: the row must say `pruning.init: null`


def test_a_study_folder_child_written_with_a_named_soft_is_still_found(tmp_path: Path):
    """A study whose base named init soft (every study in examples/studies) wrote its
    children's reports with the old hash; a later `srnet study run` must not run them again."""
    from srcore.jobspec.layout import child_dir_name
    from srcore.pipeline.study_run import finished_reports

    study = StudySpec.model_validate(
        {
            "base": {"task": "mnli"},
            "axes": [{"path": "pruning.init", "values": ["soft"]}],
            "dense_references": False,
        }
    )
    (child,) = expand_study(study)
    fixture = Path(__file__).parents[1] / "fixtures/reports/metrics-68a8353.json"
    report = json.loads(fixture.read_text())
    child_dir = tmp_path / "jobs" / child_dir_name(child.key)
    child_dir.mkdir(parents=True)
    for stored, found in [(BEFORE["named soft"][1], 1), (BEFORE["hard"][1], 0)]:
        (child_dir / "metrics.json").write_text(json.dumps({**report, "spec_hash": stored}))
        assert len(finished_reports([child], tmp_path)) == found
