"""The quick start (issue 19 items 1-3): a port taken by another SRNet service is reported and
left alone, the summary is read from the job's resolved spec whatever its task and losses, and
the closing lines name the web pages, the key file and SRNET_HOME."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from srcore.jobspec.spec import JobSpec
from srnet.quickstart import summary_lines
from tests.client.live_service import run_service

ROOT = Path(__file__).resolve().parents[2]


def resolved(raw: dict) -> dict:
    return JobSpec.model_validate(raw).model_dump(mode="json")


def point(stage: str, sparsity: float | None, **sets: dict) -> dict:
    return {"stage": stage, "sparsity": sparsity, "seed": 1, "payload": {**sets, "train_loss": 0.4}}


def test_a_qqp_job_without_a_debias_section_is_summarised_from_its_resolved_spec():
    job = {"spec": resolved({"task": "qqp", "pruning": {"sparsities": [0.5]}})}
    metrics = {
        "selected": [
            point("dense", None, dev={"accuracy": 0.81, "f1": 0.7}, paws={"accuracy": 0.4}),
            point("search", 0.5, dev={"accuracy": 0.79}, paws={"accuracy": 0.42}),
        ]
    }
    lines = summary_lines(job, metrics)
    assert lines[0].split() == ["model", "QQP", "dev", "PAWS"]
    assert "dense fine-tune (cross-entropy)" in lines[1]
    assert lines[1].split()[-2:] == ["81.0", "40.0"]
    assert "50% subnetwork, cross-entropy" in lines[2] and lines[2].split()[-2:] == ["79.0", "42.0"]
    assert not any("MNLI" in line or "HANS" in line for line in lines)


def test_hans_is_split_into_entailed_and_non_entailed_and_a_collapse_is_flagged():
    job = {"spec": resolved({"debias": {"loss": "reweight"}, "pruning": {"sparsities": [0.7]}})}
    hans = {"accuracy": 0.5, "entailed": 0.99, "non_entailed": 0.01, "collapsed": True}
    metrics = {"selected": [point("search", 0.7, dev={"accuracy": 0.6}, hans=hans)]}
    header, row = summary_lines(job, metrics)
    assert header.split() == ["model", "MNLI", "dev", "HANS", "entailed", "non-entailed"]
    assert "70% subnetwork, reweighting" in row
    assert row.split()[3:7] == ["60.0", "50.0", "99.0", "1.0"]
    assert row.endswith("(collapsed on hans: one class)")


@pytest.fixture
def quickstart_copy(tmp_path: Path) -> Path:
    """The quick start in a folder of its own (a second clone): the scripts, this venv."""
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    for name in ("quickstart", "setup"):
        shutil.copy(ROOT / "scripts" / name, clone / "scripts" / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    (clone / "examples").symlink_to(ROOT / "examples")
    return clone


def test_a_port_taken_by_another_service_is_reported_not_used(quickstart_copy, tmp_path):
    with run_service(tmp_path / "other") as other:
        port = other.url.rsplit(":", 1)[1]
        env = {**os.environ, "SRNET_PORT": port}
        env.pop("SRNET_HOME", None)
        done = subprocess.run([str(quickstart_copy / "scripts" / "quickstart")], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} is taken" in done.stderr
    assert "SRNET_PORT=8001 ./scripts/quickstart" in done.stderr
    assert "using" not in done.stdout  # it did not talk to the other service as its own
    assert not (quickstart_copy / "var" / "srnet.db").exists()  # no empty database left


def test_the_closing_lines_name_the_web_pages_the_key_and_srnet_home():
    text = (ROOT / "scripts" / "quickstart").read_text()
    closing = text[text.index("== done.") :]
    assert "$URL/web/" in closing and "var/api-key" in closing
    assert "SRNET_HOME=var .venv/bin/srnet keys create" in closing
