"""The dense fine-tune checkpoints at every evaluation, as the search stages do: a worker that
dies mid-dense resumes from the last evaluation (not step 0) and ends with the same bits as an
uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.spec import JobSpec
from srcore.pipeline import run_search
from tests.helpers.tiny_bert import torch_threads

DENSE_STEPS = 20  # training.eval_every not set: 10 evaluations, every 2 steps


def spec(model: str) -> JobSpec:
    return JobSpec.model_validate(
        {
            "task": "mnli",
            "model": {"name_or_path": model},
            "data": {"max_train_examples": 64, "max_eval_examples": 16},
            "debias": {"loss": "none"},
            "pruning": {"method": "magnitude", "sparsities": [0.5]},
            "dense": {"max_steps": DENSE_STEPS, "learning_rate": 1e-3},
            "training": {"batch_size": 8, "max_length": 32, "seeds": [1]},
            "evaluation": {"batch_size": 32},
        }
    )


class Crash(RuntimeError):
    """A worker dying (SIGKILL, a GPU fault): no checkpoint is written on the way out."""


class Recorder(Callbacks):
    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at, self.checkpoints, self.first_dense_step = crash_at, [], None

    def on_progress(self, progress) -> None:
        if progress.stage == "dense" and self.first_dense_step is None:
            self.first_dense_step = progress.step

    def on_metrics(self, curve, step, metrics) -> None:
        if curve.stage == "dense" and step == self.crash_at:
            raise Crash(step)

    def on_checkpoint(self, stage, step, path) -> None:
        if stage == "dense":
            self.checkpoints.append(step)


def dense_weights(cache: Path) -> dict:
    (entry,) = [p for p in cache.glob("dense-*") if p.is_dir()]
    return load_file(entry / "model.safetensors")


def test_dense_killed_mid_run_resumes_from_its_last_evaluation(tiny_model, tmp_path):
    job = spec(tiny_model)
    with torch_threads(1):
        straight = Recorder()
        run_search(job, tmp_path / "a", straight, cache_dir=tmp_path / "cache-a")
        assert straight.checkpoints == list(range(2, DENSE_STEPS + 1, 2))  # every evaluation

        first = Recorder(crash_at=6)  # dies inside the evaluation at step 6
        with pytest.raises(Crash):
            run_search(job, tmp_path / "b", first, cache_dir=tmp_path / "cache-b")
        assert first.checkpoints == [2, 4]
        resumed = Recorder()
        run_search(job, tmp_path / "b", resumed, cache_dir=tmp_path / "cache-b")
    assert resumed.first_dense_step == 5  # went on from the checkpoint at 4, not step 0
    assert resumed.checkpoints == list(range(6, DENSE_STEPS + 1, 2))

    report = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert report["device"]["type"] == "cpu" and report["device"]["threads"] >= 1
    assert report["precision"]["tf32"] is False and report["precision"]["deterministic"] is False

    a, b = dense_weights(tmp_path / "cache-a"), dense_weights(tmp_path / "cache-b")
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a)  # bit-identical to the uninterrupted run
