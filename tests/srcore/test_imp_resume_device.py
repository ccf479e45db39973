"""An IMP round saved on a GPU resumes on a machine (or worker) where that GPU is not there:
the round's done.pt is read with map_location="cpu" and the weights move to the training
device afterwards.

No GPU here: the round file is re-written with its tensors tagged "cuda:0", as torch.save
tags tensors that lived on the first GPU (a storage-location tagger, torch's public
`register_package`); loading such a file without a map_location fails on a CPU-only host."""

from __future__ import annotations

import json

import pytest
import torch
from torch.serialization import register_package

from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.spec import JobSpec
from srcore.pipeline import run_search
from tests.helpers.tiny_bert import torch_threads

_TAG_AS_CUDA = {"on": False}


def _tag(obj):
    return "cuda:0" if _TAG_AS_CUDA["on"] else None


def _never_restore(obj, location):
    return None  # leave restoring to torch's own cpu/cuda handlers


register_package(1, _tag, _never_restore)


def save_as_if_on_gpu(obj, path) -> None:
    _TAG_AS_CUDA["on"] = True
    try:
        torch.save(obj, path)
    finally:
        _TAG_AS_CUDA["on"] = False


class CrashInRound(Callbacks):
    def __init__(self, imp_round: int) -> None:
        self.imp_round = imp_round

    def on_metrics(self, curve, step, metrics) -> None:
        if curve.imp_round == self.imp_round:
            raise RuntimeError("worker died")


def test_imp_round_written_on_a_gpu_resumes_on_the_cpu(tiny_model, tmp_path):
    spec = JobSpec.model_validate(
        {
            "task": "mnli",
            "model": {"name_or_path": tiny_model},
            "data": {"max_train_examples": 48, "max_eval_examples": 16},
            "debias": {"loss": "none"},
            "pruning": {"method": "imp", "sparsities": [0.1, 0.2]},
            "dense": {"max_steps": 2, "learning_rate": 1e-3},
            "training": {"batch_size": 16, "max_length": 32, "imp_round_epochs": 0.5},
            "evaluation": {"batch_size": 32},
        }
    )
    out = tmp_path / "out"
    with torch_threads(1), pytest.raises(RuntimeError, match="worker died"):
        run_search(spec, out, CrashInRound(2), cache_dir=tmp_path / "cache")
    (done,) = out.rglob("imp-round-01/done.pt")
    saved = torch.load(done, map_location="cpu", weights_only=False)
    save_as_if_on_gpu(saved, done)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(done, weights_only=False)  # what the resume did before map_location

    with torch_threads(1):
        result = run_search(spec, out, cache_dir=tmp_path / "cache")
    report = json.loads(result.metrics_path.read_text())
    assert [u["sparsity"] for u in report["results"]] == [0.1, 0.2]
