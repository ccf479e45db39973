"""The web form's presets state their size and an estimate from this service's own
measurements (issue 19 item 4): "no measurement yet" until a job with the preset's model has
finished on its queue, then its training time at the median speed measured there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.web.presets import BUNDLED_TRAIN_ROWS
from persistence.repositories import JobRepository
from persistence.tables import JobStatus
from srcore.jobspec.spec import JobSpec, spec_hash

MODEL = "all-MiniLM-L6-v2"  # every preset's (the spec's default)


def _presets(client) -> dict[str, dict]:
    response = client.get("/web/form.json")
    assert response.status_code == 200
    return {p["id"]: p for p in response.json()["presets"]}


def _finished(database, owner_id, queue, speed, *, model=MODEL, status=JobStatus.succeeded,
              minutes_ago=0):  # fmt: skip
    spec = JobSpec.model_validate({"model": {"name_or_path": model}})
    with database.session() as session:
        job = JobRepository(session).create(
            owner_id=owner_id, spec=spec.model_dump(mode="json"), spec_hash=spec_hash(spec),
            queue=queue,
        )  # fmt: skip
        job.status = status.value
        job.examples_per_s = speed
        job.finished_at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        session.commit()


def test_every_preset_states_steps_evaluations_and_no_measurement_yet(client):
    presets = _presets(client)
    assert len(presets) >= 6
    for preset in presets.values():
        size = preset["size"]
        assert size["steps"] > 0 and size["evaluations"] > 0, preset["id"]
        assert f"{size['steps']:,} training steps" in preset["size_text"]
        assert preset["estimate"]["seconds"] is None
        assert preset["estimate"]["text"].startswith("No measurement yet on this service")
    first = presets["mnli-poe-mask"]  # the hours-long one the issue met first
    assert first["size"]["train_examples"] == BUNDLED_TRAIN_ROWS["mnli"]
    assert (first["size"]["steps"], first["size"]["evaluations"]) == (846 + 3 * 1410, 11 + 30)
    quick = presets["quick-cpu"]
    assert (quick["size"]["steps"], quick["size"]["evaluations"]) == (60, 6)
    assert quick["estimate"]["queue"] == "cpu"
    assert f"on queue {first['estimate']['queue']}" in first["estimate"]["text"]


def test_the_estimate_uses_the_median_speed_of_finished_jobs_on_the_queue(
    client, app_database, owner
):
    owner_id = owner[0]
    for speed in (10.0, 20.0, 40.0):
        _finished(app_database, owner_id, "cpu", speed)
    _finished(app_database, owner_id, "cpu", 1000.0, model="bert-base-uncased")  # other model
    _finished(app_database, owner_id, "cpu", 1000.0, status=JobStatus.failed)
    _finished(app_database, owner_id, "gpu", 5000.0)  # other queue
    quick = _presets(client)["quick-cpu"]
    # 60 steps of 16 examples at the median 20 examples/s
    assert quick["size"]["trained_examples"] == 960
    assert quick["estimate"] == {
        **quick["estimate"], "seconds": 48, "examples_per_s": 20.0, "jobs": 3,
    }  # fmt: skip
    assert quick["estimate"]["text"].startswith("About 1 min of training on queue cpu")
    assert "median of 3 finished jobs" in quick["estimate"]["text"]
    gpu = _presets(client)["mnli-poe-mask"]  # no queue named: the service's default, gpu
    assert gpu["estimate"]["queue"] == "gpu" and gpu["estimate"]["jobs"] == 1
    assert gpu["estimate"]["seconds"] == round(gpu["size"]["trained_examples"] / 5000)


@pytest.mark.parametrize("seconds", [30, 600, 3 * 3600 + 5 * 60])
def test_durations_read_as_words(seconds):
    from api.web.presets import duration_text

    assert duration_text(seconds) == {30: "under a minute", 600: "10 min",
                                      11100: "3 h 05 min"}[seconds]  # fmt: skip
