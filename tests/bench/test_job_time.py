"""bench/job_time.py: how it splits a job's wall time by stage and phase from the job's own
callbacks, and how it turns work into useful FLOP/s against the ceiling."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from srcore.jobspec.callbacks import Progress
from srcore.jobspec.results import CurveId

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("job_time", ROOT / "bench/job_time.py")
job_time = importlib.util.module_from_spec(_spec)
sys.modules["job_time"] = job_time  # dataclasses look their module up there
_spec.loader.exec_module(job_time)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_wall_time_is_split_into_training_evaluation_and_the_rest():
    clock = FakeClock()
    timer = job_time.StageClock(clock=clock, batch_size=32)

    def progress(stage: str, step: int, phase: str = "train") -> Progress:
        return Progress(stage, step, step, detail="seed 1", phase=phase)

    events = [
        (0.0, lambda: timer.on_stage("data")),
        (5.0, lambda: timer.on_stage("dense", "seed 1")),
        (6.0, lambda: timer.on_progress(progress("dense", 10))),
        (16.0, lambda: timer.on_progress(progress("dense", 20, "evaluate"))),
        (19.0, lambda: timer.on_metrics(CurveId(stage="dense", seed=1), 20, {})),
        (20.0, lambda: timer.on_stage("search", "seed 1")),
        (21.0, lambda: timer.on_progress(progress("search", 30))),
        (33.0, lambda: timer.on_progress(progress("search", 30, "evaluate"))),
        (37.0, lambda: timer.on_metrics(CurveId(stage="search", seed=1, sparsity=0.5), 30, {})),
        (40.0, lambda: timer.on_stage("export")),
        (42.0, timer.finish),
    ]
    for at, event in events:
        clock.now = at
        event()
    parts = timer.parts
    assert (parts["data"].other_s, parts["data"].wall_s) == (5.0, 5.0)
    dense = parts["dense"]
    assert (dense.train_s, dense.eval_s, dense.other_s) == (10.0, 3.0, 2.0)
    assert (dense.evaluations, dense.train_examples) == (1, 20 * 32)
    search = parts["search"]
    assert (search.train_s, search.eval_s, search.other_s) == (12.0, 4.0, 4.0)
    assert search.train_examples == 30 * 32
    assert parts["export"].wall_s == 2.0
    assert sum(p.wall_s for p in parts.values()) == 42.0

    lines = job_time.flop_report(
        parts, matrix_params=1000, train_tokens=50.0, eval_tokens_per_evaluation=2e5, ceiling=1e9
    )
    dense_line = next(line for line in lines if line.startswith("dense"))
    # train: 6 · 1000 · 50 · 640 / 10 s = 19.2 MFLOP/s; eval: 2 · 1000 · 2e5 / 3 s
    assert "eval     3.0 s (20.0%)" in dense_line
    assert f"train {6 * 1000 * 50 * 640 / 10 / 1e9:6.1f} GFLOP/s" in dense_line
    assert f"= {6 * 1000 * 50 * 640 / 10 / 1e9:5.1%} of bf16" in dense_line
    assert f"= {2 * 1000 * 2e5 / 3 / 1e9:5.1%} of bf16" in dense_line
    fp32 = job_time.flop_report(parts, 1000, 50.0, 2e5, ceiling=1e9, precision="fp32")
    assert "of fp32" in "".join(fp32) and "bf16" not in "".join(fp32)  # a CPU without bf16


def test_the_fixed_job_is_the_issues_job_and_quick_is_small():
    from srcore.jobspec.spec import JobSpec

    full = JobSpec.model_validate(job_time.job_spec(False, "all-MiniLM-L6-v2"))
    assert (full.debias.loss, full.dense.loss, full.pruning.sparsities) == ("poe", "none", [0.5])
    assert full.data.max_train_examples is None and full.training.seeds == [1]
    quick = JobSpec.model_validate(job_time.job_spec(True, "x"))
    assert quick.training.max_steps == 8 and quick.data.max_train_examples == 256
    assert pytest.approx(full.training.eval_every) == 94
