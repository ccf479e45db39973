"""The worker's srcore callbacks and result bookkeeping without a model: throttled progress,
the curve each evaluation belongs to, the lease, and selected points from the search result."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from persistence.db import Database
from persistence.repositories import JobRepository, Lease, MetricRepository
from persistence.tables import EventKind, JobStatus
from srcore.jobspec.callbacks import Progress
from srcore.jobspec.results import CurveId, DensePoint, ResultUnit, SearchResult
from srcore.jobspec.spec import JobSpec
from srcore.pipeline.plan import StagePlan
from tests.worker.tiny_job import create_job, tiny_job_spec
from worker.lease import JobLease
from worker.reporting import JobReporter, curve_key
from worker.results import record_selected_points


@pytest.fixture
def database(sqlite_url: str):
    db = Database(sqlite_url)
    yield db
    db.dispose()


def claimed_job(database: Database, tmp_path: Path) -> tuple[uuid.UUID, str]:
    job_id = create_job(database, tiny_job_spec(tmp_path / "model"))
    with database.session() as session:
        JobRepository(session).claim(job_id, "w1")
        session.commit()
    return job_id, "w1"


def reporter_for(database, job_id, worker_id, tmp_path, clock) -> JobReporter:
    lease = JobLease(database, job_id, worker_id, interval_s=60)
    return JobReporter(database, job_id, worker_id, lease, out_dir=tmp_path,
                       progress_interval_s=1.0, clock=clock)  # fmt: skip


SEARCH_05 = CurveId(stage="search", seed=1, sparsity=0.5)


def test_progress_is_written_at_most_once_a_second_and_at_the_end(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    now = [100.0]
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: now[0])

    def progress(step: int, at: float) -> None:
        now[0] = at
        reporter.on_progress(Progress("search", step, 100, 50.0, 10.0, "seed 1, sparsity 0.5"))

    progress(10, 100.0)
    progress(20, 100.3)
    progress(30, 100.9)
    assert reporter.writes == 1
    progress(40, 101.1)
    assert reporter.writes == 2
    progress(100, 101.2)  # the last step is always written
    assert reporter.writes == 3
    with database.session() as session:
        job = JobRepository(session).get(job_id)
    assert (job.progress_step, job.progress_total, job.examples_per_s) == (100, 100, 50.0)


def test_whole_job_progress_and_the_evaluation_phase_are_written(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    now = [100.0]
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: now[0])
    last = Progress("search", 100, 100, 50.0, 0.0, "seed 1", job_fraction=0.4, job_eta_s=60.0)
    reporter.on_progress(last)
    evaluating = last.with_(phase="evaluate", eval_examples_done=10, eval_examples_total=90)
    now[0] = 100.2
    reporter.on_progress(evaluating)  # the last step's reports no longer bypass the throttle
    assert reporter.writes == 1
    now[0] = 101.5
    reporter.on_progress(evaluating.with_(job_fraction=0.45, job_eta_s=float("inf")))
    assert reporter.writes == 2
    with database.session() as session:
        job = JobRepository(session).get(job_id)
    assert (job.phase, job.job_fraction, job.job_eta_s) == ("evaluate", 0.45, None)
    reporter.on_stage("export", "seed 1, sparsity 0.5")  # a stage keeps the job's fraction
    with database.session() as session:
        job = JobRepository(session).get(job_id)
        assert (job.phase, job.job_fraction) == (None, 0.45)
        JobRepository(session).transition(job_id, JobStatus.succeeded, worker_id=worker_id)
        session.commit()
        job = JobRepository(session).get(job_id)
    assert (job.job_fraction, job.job_eta_s) == (1.0, None)  # finished: the whole job done


def test_a_cancel_request_reaches_should_stop_through_a_write(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: 0.0)
    reporter.on_stage("search", "seed 1: mask_training, finetuned")
    assert reporter.should_stop() is False
    with database.session() as session:
        JobRepository(session).request_cancel(job_id)
        session.commit()
    reporter.on_stage("export", "seed 1, sparsity 0.5")
    assert reporter.lease.state is Lease.cancel_requested and reporter.should_stop() is True


def test_nothing_is_written_once_the_lease_is_lost(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: 0.0)
    with database.session() as session:
        JobRepository(session).transition(job_id, JobStatus.queued, worker_id=worker_id)
        session.commit()
    assert reporter.lease.beat() is Lease.lost
    before = reporter.writes
    reporter.on_metrics(SEARCH_05, 10, {"dev": {"accuracy": 0.5}, "sparsity": 0.5})
    reporter.on_checkpoint("search", 10, tmp_path / "x")
    assert reporter.writes == before and reporter.should_stop()
    with database.session() as session:
        assert MetricRepository(session).list(job_id) == []
        kinds = [e.kind for e in JobRepository(session).events.list(job_id)]
    assert EventKind.checkpoint not in kinds


def test_an_evaluation_already_recorded_is_not_recorded_twice(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: 0.0)
    reporter.on_stage("search", "seed 1: mask_training, finetuned")
    reporter.on_metrics(SEARCH_05, 10, {"sparsity": 0.5, "selection": 0.4})
    reporter.on_metrics(SEARCH_05, 10, {"sparsity": 0.5, "selection": 0.4})
    with database.session() as session:
        rows = MetricRepository(session).list(job_id)
    assert [(m.stage, m.seed, m.sparsity, m.step) for m in rows] == [("search", 1, 0.5, 10)]


def spec_with(**pruning) -> JobSpec:
    # dense.loss "job": the search starts from a conf_reg fine-tune; the teacher is another,
    # plain cross-entropy one.
    return JobSpec.model_validate({
        "pruning": pruning, "training": {"seeds": [3, 4]},
        "debias": {"loss": "conf_reg"}, "dense": {"loss": "job"},
    })  # fmt: skip


def test_curves_are_filed_by_the_curve_id_srcore_names():
    plan = StagePlan.from_spec(spec_with(sparsities=[0.5, 0.7], schedule="gradual",
                                         initial_sparsity=0.3))  # fmt: skip
    dense = CurveId(stage=plan.dense_curve_stage("conf_reg"), seed=3, loss="conf_reg")
    assert curve_key(dense, 10) == ("dense", 3, 0.0, 10)
    teacher = CurveId(stage=plan.dense_curve_stage("none"), seed=3, loss="none")
    assert curve_key(teacher, 10) == ("teacher", 3, 0.0, 10)  # the conf_reg teacher
    # On the gradual ramp the hooks report the current sparsity: the curve is the target's.
    assert curve_key(CurveId(stage="search", seed=4, sparsity=0.7), 20) == ("search", 4, 0.7, 20)
    # IMP: a round's evaluations are filed at the round's sparsity.
    imp_round = CurveId(stage="search", seed=1, sparsity=0.1, imp_round=1)
    assert curve_key(imp_round, 7) == ("search", 1, 0.1, 7)
    # A CE dense model that is also the teacher is the dense curve.
    ce_plan = StagePlan.from_spec(JobSpec.model_validate({"debias": {"loss": "conf_reg"}}))
    assert ce_plan.dense_curve_stage("none") == "dense"


def unit_result(tmp_path: Path, dense: list[DensePoint], units: list[ResultUnit]):
    return SearchResult(out_dir=tmp_path, spec={}, spec_hash="0" * 64, task="mnli",
                        labels=["contradiction", "entailment", "neutral"],
                        selection_metric="accuracy", data={}, bias=None, dense=dense,
                        units=units, summary=[], versions={}, seconds=1.0)  # fmt: skip


def test_selected_points_come_from_the_result_and_fill_missing_curves(database, tmp_path):
    job_id, worker_id = claimed_job(database, tmp_path)
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: 0.0)
    reporter.on_stage("search", "seed 1: mask_training, finetuned")
    for step in (2, 4):
        reporter.on_metrics(SEARCH_05, step, {"sparsity": 0.5, "selection": step / 10})

    def entry(step: int) -> dict:
        return {"step": step, "metrics": {"selection": step / 10}, "train_loss": 1.0,
                "info": {"sparsity": 0.5}}  # fmt: skip

    result = unit_result(
        tmp_path,
        # a dense fine-tune reused from the stage cache: never reported live
        [DensePoint(seed=1, selected_step=6, metrics={}, history=[entry(3), entry(6)],
                    cached=True)],
        [ResultUnit(seed=1, sparsity=0.5, stage="search", selected_step=4, metrics={},
                    selection=0.4, history=[entry(2), entry(4)], sparsity_report={},
                    mask=tmp_path / "m", checkpoint=tmp_path / "c")],
    )  # fmt: skip
    with database.session() as session:
        assert record_selected_points(session, job_id, result) == 2
        session.commit()
    with database.session() as session:
        rows = MetricRepository(session).list(job_id)
    table = sorted((m.stage, m.sparsity, m.step, m.selected) for m in rows)
    assert table == [("dense", 0.0, 3, False), ("dense", 0.0, 6, True),
                     ("search", 0.5, 2, False), ("search", 0.5, 4, True)]  # fmt: skip
    filled = next(m for m in rows if (m.stage, m.step) == ("dense", 3))
    assert filled.payload == {"selection": 0.3, "sparsity": 0.5, "train_loss": 1.0}


def test_a_units_mask_movement_goes_into_its_selected_point(database, tmp_path):
    """A study's `≠ magnitude` column reads the movement from the database."""
    job_id, _worker_id = claimed_job(database, tmp_path)

    def entry(step: int) -> dict:
        return {"step": step, "metrics": {"selection": step / 10, "dev": {"accuracy": 0.7}},
                "train_loss": 1.0, "info": {"sparsity": 0.5}}  # fmt: skip

    movement = {"entries": 1000, "differ_from_magnitude": 45, "flipped_from_init": 12,
                "differ_fraction": 0.045, "flipped_fraction": 0.012}  # fmt: skip
    result = unit_result(
        tmp_path,
        [DensePoint(seed=1, selected_step=3, metrics={}, history=[entry(3)], cached=False)],
        [ResultUnit(seed=1, sparsity=0.5, stage="search", selected_step=4, metrics={},
                    selection=0.4, history=[entry(2), entry(4)], sparsity_report={},
                    movement=movement, mask=tmp_path / "m", checkpoint=tmp_path / "c")],
    )  # fmt: skip
    with database.session() as session:
        assert record_selected_points(session, job_id, result) == 2
        session.commit()
    with database.session() as session:
        rows = {(m.stage, m.step): m for m in MetricRepository(session).list(job_id)}
    assert rows[("search", 4)].selected
    assert rows[("search", 4)].payload["movement"] == movement
    assert rows[("search", 4)].payload["dev"] == {"accuracy": 0.7}
    assert "movement" not in rows[("search", 2)].payload  # only the selected point
    assert "movement" not in rows[("dense", 3)].payload


def test_non_finite_numbers_are_stored_as_null(database, tmp_path):
    """PostgreSQL's JSONB refuses NaN; an F1 over no positive prediction is NaN."""
    job_id, worker_id = claimed_job(database, tmp_path)
    reporter = reporter_for(database, job_id, worker_id, tmp_path, lambda: 0.0)
    reporter.on_stage("search", "seed 1: mask_training, finetuned")
    reporter.on_metrics(SEARCH_05, 2, {"sparsity": 0.5, "dev": {"f1": float("nan")},
                                      "train_loss": float("inf"), "selection": 0.5})  # fmt: skip
    with database.session() as session:
        (row,) = MetricRepository(session).list(job_id)
    assert row.payload["dev"] == {"f1": None} and row.payload["train_loss"] is None
    assert row.payload["selection"] == 0.5
