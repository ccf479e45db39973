"""`srnet submit | list | status | watch | cancel | download` against a real running API: output
and the exit codes scripts rely on (0 ok, 1 failed, 2 bad input, 3 cancelled, 4 unreachable)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from persistence.tables import JobStatus
from srcore.jobspec.layout import artifact_names, job_tag
from srnet.cli import main
from srnet.client import Job, Progress
from srnet.client_cli import ProgressLine
from tests.client.live_service import LiveService, free_port, tar_bytes

ROOT = Path(__file__).resolve().parents[2]
SPEC = {"name": "cli-poe", "debias": {"loss": "poe"}, "pruning": {"sparsities": [0.5, 0.7]}}


@pytest.fixture
def env(service: LiveService, key: str, monkeypatch) -> str:
    monkeypatch.setenv("SRNET_URL", service.url)
    monkeypatch.setenv("SRNET_API_KEY", key)
    return key


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_submit_prints_the_job_id(env, spec_file, capsys, service):
    code, out, err = run(capsys, "submit", str(spec_file))
    assert code == 0, err
    job_id = out.strip()
    assert uuid.UUID(job_id)
    assert "submitted cli-poe (queued" in err
    code, out, _ = run(capsys, "submit", str(spec_file), "--json", "--queue", "cpu")
    assert code == 0 and json.loads(out)["queue"] == "cpu"


def test_submit_invalid_spec_exits_2_naming_the_field(env, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"pruning": {"sparsities": [0.5, 1.5]}}))
    code, out, err = run(capsys, "submit", str(bad))
    assert code == 2
    assert out == ""
    assert "pruning.sparsities" in err and "less than 1" in err
    code, _, err = run(capsys, "submit", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read" in err
    bad.write_text("{")
    code, _, err = run(capsys, "submit", str(bad))
    assert code == 2 and "not JSON" in err


def test_list_status_and_cancel(env, spec_file, capsys):
    first = run(capsys, "submit", str(spec_file))[1].strip()
    second = run(capsys, "submit", str(spec_file))[1].strip()
    code, out, _ = run(capsys, "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert [line.split()[0] for line in lines[1:]] == [second, first]
    code, out, _ = run(capsys, "cancel", first)
    assert code == 0 and out.strip() == f"{first} cancelled"
    code, _, err = run(capsys, "cancel", first)
    assert code == 1 and "cancelled" in err  # already finished: refused
    code, out, _ = run(capsys, "list", "--status", "cancelled", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [first]
    code, out, _ = run(capsys, "status", second)
    assert code == 0
    fields = {line.split(None, 1)[0]: line.split(None, 1)[1:] for line in out.splitlines()}
    assert fields["id"] == [second] and fields["status"] == ["queued"]
    assert fields["stage"] == [] and fields["attempt"] == ["0 of 3"]
    # A queued job's place and why it waits (persistence.dispatch), e.g. "place 1: next to
    # start when a worker is free".
    assert fields["queue"][0].startswith("place ") and ": " in fields["queue"][0]
    code, out, _ = run(capsys, "status", second, "--json")
    assert json.loads(out)["spec"]["debias"]["loss"] == "poe"


def test_unknown_job_wrong_or_missing_key_exit_2(env, service, capsys, monkeypatch):
    missing = str(uuid.uuid4())
    code, _, err = run(capsys, "status", missing)
    assert code == 2 and f"no job {missing} for this API key" in err and "Not Found" not in err
    code, _, err = run(capsys, "list", "--key", "srn_wrong")
    assert code == 2 and "unauthorized" in err
    assert "srn_wrong" not in err  # the key is never printed
    monkeypatch.delenv("SRNET_API_KEY")
    code, _, err = run(capsys, "list")
    assert code == 2 and "SRNET_API_KEY" in err
    code, _, _ = run(capsys, "list", "--key", env, "--url", service.url)
    assert code == 0


def test_unreachable_service_exits_4_from_the_real_command(tmp_path):
    env = {**os.environ, "SRNET_API_KEY": "srn_x", "SRNET_URL": f"http://127.0.0.1:{free_port()}"}
    result = subprocess.run(
        [sys.executable, "-m", "srnet", "list", "--timeout", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4, result.stderr
    assert "did not answer" in result.stderr


def _run_worker_later(service: LiveService, job_id: str, **kwargs) -> threading.Thread:
    def work() -> None:
        time.sleep(0.3)
        service.worker(job_id).run_search(**kwargs)

    thread = threading.Thread(target=work)
    thread.start()
    return thread


@pytest.mark.parametrize("mode", [[], ["--poll", "--interval", "0.05"]])
def test_watch_follows_the_job_then_prints_the_metrics_table(env, spec_file, service, capsys, mode):
    job_id = run(capsys, "submit", str(spec_file))[1].strip()
    worker = _run_worker_later(service, job_id, pause_s=0.01)
    code, out, err = run(capsys, "watch", job_id, *mode)
    worker.join()
    assert code == 0, err
    assert "succeeded" in err
    if not mode:  # the stream also carries the log
        assert "stage search (seed 1: mask_training, finetuned)" in err
    table = out.split("\n\n")[0].splitlines()
    assert table[1].split() == ["STAGE", "SEED", "SPARSITY", "STEP", "dev", "hans", "COLLAPSED",
                                "ON"]  # fmt: skip
    rows = {line.split()[2]: line.split() for line in table[2:]}
    assert rows["50%"][3:] == ["30", "79.5", "62.7", "–"]
    assert rows["0%"][0] == "dense"
    assert "HANS by heuristic" in out and "lexical_overlap" in out


def test_watch_exit_codes_for_failed_and_cancelled(env, spec_file, service, capsys):
    failed = run(capsys, "submit", str(spec_file))[1].strip()
    worker = service.worker(failed)
    worker.claim()
    worker.finish(JobStatus.failed, error="loss is nan at step 12")
    code, _, err = run(capsys, "watch", failed)
    assert code == 1 and "loss is nan at step 12" in err
    cancelled = run(capsys, "submit", str(spec_file))[1].strip()
    run(capsys, "cancel", cancelled)
    code, _, err = run(capsys, "watch", cancelled)
    assert code == 3 and "cancelled" in err


def test_progress_line_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    line = ProgressLine(stream, width=10)
    line.detail = "seed 1, sparsity 0.7"
    job = Job(
        id="x",
        name=None,
        status="running",
        queue="gpu",
        stage="search",
        progress=Progress(step=450, total=1000, fraction=0.9, phase="train", job_fraction=0.45),
        examples_per_s=812.6,
        eta_s=12,
        error=None,
        attempt=1,
        max_attempts=3,
        cancel_requested=False,
        created_at=None,
        updated_at=None,
        started_at=None,
        finished_at=None,
        job_eta_s=95,
        elapsed_s=62,
    )
    line.update(job)
    line.message("12:00:00 stage export")
    line.close()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K")
    assert "[search] seed 1, sparsity 0.7" in text
    # the bar and the ETA are the whole job's (45%), not the stage's (90%)
    assert "████░░░░░░  45%" in text  # 4.5 of 10 cells, rounded to even
    assert "elapsed 1m02s" in text and "ETA 1m35s" in text
    assert "step 450/1000" in text and "813 ex/s" in text
    assert "12:00:00 stage export\n" in text and text.endswith("\n")
    evaluating = dataclasses.replace(
        job, progress=dataclasses.replace(job.progress, phase="evaluate")
    )
    assert "evaluating" in line.render(evaluating) and "ex/s" not in line.render(evaluating)
    done = dataclasses.replace(job, status="succeeded", stage="export", elapsed_s=312)
    assert line.render(done) == "succeeded in 5m12s"  # its final state, not "stage export"


def test_end_to_end_submit_watch_download_and_the_checkpoint_loads(
    env, spec_file, service, capsys, tmp_path
):
    """The issue's proof: submit, watch, download with --extract, and transformers loads it."""
    from transformers import AutoModelForSequenceClassification

    from tests.helpers.tiny_model_dir import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "exported", num_labels=3)
    config = json.loads((model_dir / "config.json").read_text())
    config["id2label"] = {"0": "contradiction", "1": "entailment", "2": "neutral"}
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (model_dir / "config.json").write_text(json.dumps(config))
    code, out, err = run(capsys, "submit", str(spec_file))
    assert code == 0, err
    job_id = out.strip()
    names = artifact_names(job_tag(job_id), 1, 0.5)
    archive = tar_bytes(model_dir, names.checkpoint_root)
    worker = _run_worker_later(service, job_id, sparsities=(0.5,), checkpoint=archive)
    code, out, err = run(capsys, "watch", job_id)
    worker.join()
    assert code == 0, err
    out_dir = tmp_path / "downloads"
    code, out, err = run(capsys, "download", job_id, "--out", str(out_dir), "--extract")
    assert code == 0, err
    assert "sha256" in out and "ok" in out
    extracted = out_dir / names.checkpoint_root  # one level deep
    assert f"extracted to {extracted}" in out
    model = AutoModelForSequenceClassification.from_pretrained(extracted)
    assert model.config.id2label[1] == "entailment"
    code, out, _ = run(capsys, "download", job_id, "--out", str(out_dir), "--what", "mask")
    assert code == 0 and names.mask in out
    # --what onnx asks for the ONNX archives (export.onnx); this job exported none
    code, _, err = run(capsys, "download", job_id, "--out", str(out_dir), "--what", "onnx")
    assert code == 1 and "no onnx artifact" in err
    # Extracting again over a changed folder is refused without --force, exit 1.
    (extracted / "config.json").write_text("{}")
    code, _, err = run(capsys, "download", job_id, "--out", str(out_dir), "--extract")
    assert code == 1 and "--force" in err and (extracted / "config.json").read_text() == "{}"
    code, _, err = run(capsys, "download", job_id, "--out", str(out_dir), "--extract", "--force")
    assert code == 0, err
    assert json.loads((extracted / "config.json").read_text())["id2label"]["1"] == "entailment"
    # No artifact of that sparsity: exit 1, nothing written.
    code, _, err = run(
        capsys, "download", job_id, "--out", str(tmp_path / "x"), "--sparsity", "0.9"
    )
    assert code == 1 and "no checkpoint artifact with sparsity 0.9; it has: checkpoint" in err
    assert not (tmp_path / "x").exists()
    # 50 and 50% mean 50 %, as the pages show it.
    for given in ("50", "50%"):
        code, out, err = run(capsys, "download", job_id, "--out", str(out_dir), "--what", "mask",
                             "--sparsity", given)  # fmt: skip
        assert code == 0 and names.mask in out, err


def test_push_offline_fails_at_once_with_exit_4(env, spec_file, service, capsys, tmp_path,
                                                monkeypatch):  # fmt: skip
    from tests.helpers.tiny_model_dir import save_tiny_model

    code, out, _ = run(capsys, "submit", str(spec_file))
    job_id = out.strip()
    code, _, err = run(capsys, "push", job_id, "lab/x", "--out", str(tmp_path))
    assert code == 1 and "is queued: only a succeeded job has a checkpoint" in err
    names = artifact_names(job_tag(job_id), 1, 0.5)
    model_dir = save_tiny_model(tmp_path / "exported", num_labels=3)
    archive = tar_bytes(model_dir, names.checkpoint_root)
    service.worker(job_id).run_search((0.5,), checkpoint=archive)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run(capsys, "push", job_id, "lab/x", "--out", str(tmp_path / "dl"))
    assert code == 4 and "push to lab/x failed: HF_HUB_OFFLINE is set" in err
    assert (tmp_path / "dl" / names.checkpoint_root / "config.json").is_file()


def test_version_short_ids_urls_and_messages(env, spec_file, service, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.startswith("srnet ")
    job_id = run(capsys, "submit", str(spec_file))[1].strip()
    code, out, err = run(capsys, "status", job_id[:8])  # the short id file names carry
    assert code == 0 and job_id in out, err
    code, _, err = run(capsys, "status", "zz")
    assert code == 2 and "not a job id" in err
    code, _, err = run(capsys, "status", "0000000")
    assert code == 2 and "no job of yours has an id starting with '0000000'" in err
    # A finished job cannot be cancelled: said in plain words, exit 1.
    worker = service.worker(job_id)
    worker.claim()
    worker.finish()
    code, _, err = run(capsys, "cancel", job_id[:8])
    assert code == 1 and "the job has already succeeded" in err and "is succeeded" not in err
    # A URL without a scheme is bad input (2), not an unreachable service (4).
    code, _, err = run(capsys, "list", "--url", "127.0.0.1:8000")
    assert code == 2 and "http://127.0.0.1:8000" in err
    # A URL that is not the service's base: a clear message, not "not found: Not Found".
    code, _, err = run(capsys, "status", job_id, "--url", service.url + "/wrong")
    assert code == 2 and "base URL" in err and "Not Found" not in err


def test_the_closing_table_flags_a_collapsed_model():
    """Issue 19 item 5: `srnet watch`'s table showed a collapsed model's HANS accuracy bare."""
    from srnet.client import Metrics
    from srnet.client_cli import format_metrics

    def point(i, stage, sparsity, hans):
        return {"id": i, "at": "2026-12-03T09:00:00Z", "stage": stage, "step": 8, "seed": 1,
                "sparsity": sparsity, "selected": True,
                "payload": {"dev": {"accuracy": 0.6, "n": 10}, "hans": hans}}  # fmt: skip

    collapsed = {"accuracy": 0.5, "n": 10, "collapsed": True, "majority_label": "entailment"}
    metrics = Metrics.from_json({"job_id": "j", "curves": [], "selected": [
        point(1, "dense", None, {"accuracy": 0.52, "n": 10, "collapsed": False}),
        point(2, "search", 0.5, collapsed),
    ]})  # fmt: skip
    lines = format_metrics(metrics).splitlines()
    assert lines[1].split()[-2:] == ["COLLAPSED", "ON"]
    assert lines[2].split()[-1] == "–" and lines[3].split()[-1] == "hans"
    assert lines[4].startswith("COLLAPSED ON: the model predicts one class for at least 95%")
