"""`bench/gpu_check.py --allow-cpu --report r.json`: the GPU check's every named check runs on
the CPU (tiny budgets) and passes, and the report has the documented shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = {
    "pipeline.mask_training_hard_poe",
    "pipeline.mask_training_soft_conf_reg",
    "pipeline.gradual_50_to_70",
    "pipeline.imp_2_rounds_poe",
    "pipeline.magnitude_one_shot",
    "pipeline.stage_cache",
    "bert_shape.steps_memory_tau_projection",
    "resume.deterministic",
    "resume.production",
    "oom.clear_error",
    "worker.device_recorded",
}


@pytest.mark.slow
def test_gpu_check_runs_every_check_on_the_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRNET_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
    report_path = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--allow-cpu",
         "--report", str(report_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert report_path.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert set(report) == {"checks", "timings", "environment"}
    by_name = {c["name"]: c for c in report["checks"]}
    assert set(by_name) == CHECKS
    failed = {n: c.get("error") or c for n, c in by_name.items() if c["ok"] is not True}
    assert not failed, failed
    assert result.returncode == 0, result.stdout[-3000:]
    # What the checks saw, not only that they said ok.
    for name in CHECKS:
        if name.startswith("pipeline.") and name != "pipeline.stage_cache":
            exports = by_name[name]["exports"]
            assert exports and all(e["wrong_k"] == [] and e["not_fp32"] == [] for e in exports)
    assert [e["sparsity"] for e in by_name["pipeline.imp_2_rounds_poe"]["exports"]] == [0.1, 0.2]
    assert by_name["resume.deterministic"]["mask"]["max_abs_diff"] == 0.0
    assert by_name["worker.device_recorded"]["stopped_cleanly"] is True
    (job,) = by_name["worker.device_recorded"]["jobs"]
    assert job["device_type"] == "cpu" and job["cuda_visible_devices"] == ""
    assert report["environment"]["cpu"]["type"] == "cpu" and report["environment"]["gpus"] == []
    steps = report["timings"]["bert_shape_steps"]
    assert steps["tau_reset"]["wrong_k"] == [] and steps["projected_5_epoch_mnli_mask_search_h"] > 0
