"""scripts/partial_study.py: a table from the seeds a study has finished, on a tiny random BERT:
the finished seed's unit is read back (not retrained), its numbers and mask hash are the
source's; a child that finished every seed (work folder cleaned) is read from its report; and a
child the source never finished runs for real."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from srcore.jobspec.callbacks import Callbacks
from srcore.jobspec.layout import child_dir_name
from srcore.jobspec.study import StudySpec, expand_study
from srcore.jobspec.study_table import read_seeds_csv
from srcore.pipeline.run import clean_work, run_search
from tests.helpers.tiny_bert import torch_threads

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "partial_study", ROOT / "scripts/partial_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _base(tiny_model: str, seeds: list[int]) -> dict:
    return {
        "task": "mnli",
        "model": {"name_or_path": tiny_model},
        "data": {"max_train_examples": 64, "max_eval_examples": 32},
        "pruning": {"sparsities": [0.5], "method": "mask_training", "init": "soft"},
        "dense": {"max_steps": 4, "learning_rate": 1e-3},
        "training": {
            "max_steps": 4,
            "eval_every": 2,
            "batch_size": 16,
            "max_length": 32,
            "seeds": seeds,
        },
        "evaluation": {"batch_size": 64},
    }


def test_a_partial_table_reads_the_finished_seed_and_runs_what_is_missing(tiny_model, tmp_path):
    axes = [{"path": "training.learning_rate", "values": [1e-3, 2e-3, 4e-3]}]
    source = {"name": "src", "base": _base(tiny_model, [1, 2]), "axes": axes,
              "dense_references": False}  # fmt: skip
    (tmp_path / "source.json").write_text(json.dumps(source))
    src_out = tmp_path / "src"
    child = expand_study(StudySpec.model_validate(source))[0]  # lr 1e-3: seed 1 finishes
    child_dir = src_out / "jobs" / child_dir_name(child.key)
    one_seed = child.spec.model_copy(
        update={"training": child.spec.training.model_copy(update={"seeds": [1]})}
    )
    with torch_threads(1):
        run_search(one_seed, child_dir, Callbacks(), cache_dir=src_out / "cache")
    unit_file = child_dir / "work/seed-1/done/unit-0.50.json"
    finished = json.loads(unit_file.read_text())
    # Poison the finished unit's number: read back, it shows; retrained, it would not.
    finished["metrics"]["dev"]["accuracy"] = 0.123456
    unit_file.write_text(json.dumps(finished))
    mask = child_dir / "masks/seed-1/mask-0.50.safetensors"
    # lr 2e-3 finished every seed: its work folder is cleaned, its units are in its report
    whole = expand_study(StudySpec.model_validate(source))[1]
    whole_dir = src_out / "jobs" / child_dir_name(whole.key)
    with torch_threads(1):
        run_search(whole.spec, whole_dir, Callbacks(), cache_dir=src_out / "cache")
    clean_work(whole_dir)
    assert not (whole_dir / "work/seed-1/done").exists()
    report = json.loads((whole_dir / "metrics.json").read_text())
    for unit in report["results"]:
        unit["metrics"]["dev"]["accuracy"] = 0.654321 if unit["seed"] == 1 else 0.5
    (whole_dir / "metrics.json").write_text(json.dumps(report))

    derived = {"name": "partial", "base": _base(tiny_model, [1]), "axes": axes,
               "dense_references": False}  # fmt: skip
    (tmp_path / "derived.json").write_text(json.dumps(derived))
    dest = tmp_path / "partial"
    with torch_threads(1):
        assert (
            _script().main(
                str(tmp_path / "source.json"),
                str(src_out),
                str(tmp_path / "derived.json"),
                str(dest),
            )
            == 0
        )
    seeds = read_seeds_csv((dest / "seeds.csv").read_text())
    dev = {r["row"]: r for r in seeds if r["metric"] == "dev.accuracy"}
    assert set(dev) == {"learning_rate 0.001", "learning_rate 0.002", "learning_rate 0.004"}
    assert dev["learning_rate 0.001"]["value"] == 0.123456  # the source's unit, not a rerun
    assert dev["learning_rate 0.002"]["value"] == 0.654321  # read from the finished report
    assert (
        dev["learning_rate 0.001"]["mask_sha256"] == hashlib.sha256(mask.read_bytes()).hexdigest()
    )
    # the child the source never finished ran here, with its own mask
    assert dev["learning_rate 0.004"]["value"] not in (0.123456, 0.654321)
    assert dev["learning_rate 0.004"]["mask_sha256"]
    assert all(r["seed"] == 1 for r in seeds)
    info = json.loads((dest / "run_info.json").read_text())
    assert info["partial_of"] == str(tmp_path / "source.json") and info["seeds"] == [1]
